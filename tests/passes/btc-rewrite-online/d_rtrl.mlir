// RUN: btc-opt --pipeline "btc-rewrite-online{algorithm=d-rtrl}"
// The same model with D-RTRL traces: each projection updates its own per-weight trace and
// accumulates its gradient from it; no presynaptic traces.

module attributes {btc.batch = 2 : i64, btc.chunk = 4 : i64, btc.order = ["h", "out"]} {
  "btc.input"() {binary = true, size = 3 : i64, sym_name = "x"} : () -> ()
  "btc.group"() ({
  ^bb0(%v: f32, %y: f32):
    %0 = arith.addf %v, %y : f32
    "btc.yield"(%0) : (f32) -> ()
  }, {
  ^bb0(%v: f32):
    %0 = "btc.spike"(%v) {slope = 4.0 : f64, surrogate = "sigmoid"} : (f32) -> f32
    "btc.yield"(%0) : (f32) -> ()
  }) {init = [0.0 : f32], model = "lif", size = 2 : i64, states = ["v"], sym_name = "h"} : () -> ()
  "btc.readout"() ({
  ^bb0(%r: f32, %y: f32):
    %0 = arith.addf %r, %y : f32
    "btc.yield"(%0) : (f32) -> ()
  }) {init = [0.0 : f32], size = 4 : i64, states = ["r"], sym_name = "out"} : () -> ()
  "btc.projection"() {bias = false, post = @h, pre = @x, recurrent = false, sym_name = "x_to_h"} : () -> ()
  "btc.projection"() {bias = true, post = @out, pre = @h, recurrent = false, sym_name = "h_to_out"} : () -> ()
  "btc.loss"() {kind = "cross_entropy", readout = @out} : () -> ()
  "btc.trace"() {decay = 1.0 : f64, delay = 0 : i64, kind = "dense", num_states = 1 : i64, of = @x_to_h, rows = 3 : i64, size = 2 : i64, sym_name = "e_W_x_to_h"} : () -> ()
  "btc.trace"() {decay = 1.0 : f64, delay = 0 : i64, kind = "dense", num_states = 1 : i64, of = @h_to_out, rows = 2 : i64, size = 4 : i64, sym_name = "e_W_h_to_out"} : () -> ()
  "btc.trace"() {decay = 1.0 : f64, delay = 0 : i64, kind = "bias", num_states = 1 : i64, of = @out, port = "y", size = 4 : i64, sym_name = "e_b_out"} : () -> ()
}

// CHECK: "btc.schedule"() ({
// CHECK-NEXT: "btc.learning_signal"() {group = @out}
// CHECK-NEXT: "btc.learning_signal"() {group = @h}
// CHECK-NEXT: "btc.update_dense_trace"() {projection = @x_to_h, trace = @e_W_x_to_h}
// CHECK-NEXT: "btc.accumulate_dense_grad"() {projection = @x_to_h, trace = @e_W_x_to_h}
// CHECK-NEXT: "btc.update_bias_trace"() {group = @out, trace = @e_b_out}
// CHECK-NEXT: "btc.update_dense_trace"() {projection = @h_to_out, trace = @e_W_h_to_out}
// CHECK-NEXT: "btc.accumulate_dense_grad"() {projection = @h_to_out, trace = @e_W_h_to_out}
// CHECK-NEXT: "btc.accumulate_bias_grad"() {projection = @h_to_out, trace = @e_b_out}
// CHECK-NEXT: "btc.yield"() : () -> ()
// CHECK-NEXT: }) {algorithm = "d-rtrl"} : () -> ()
// CHECK-NOT: update_pre_trace
