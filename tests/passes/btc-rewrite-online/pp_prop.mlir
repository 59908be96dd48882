// RUN: btc-opt --pipeline "btc-rewrite-online"
// x[3] -> h -> out[4] (h_to_out biased) with the traces btc-plan-traces gives pp-prop. One step:
// learning signals in reverse group order, the presynaptic traces, then per group (in order) its
// postsynaptic and bias traces and the gradients of the projections into it.

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
  "btc.trace"() {decay = 0.9 : f64, delay = 0 : i64, kind = "pre", num_states = 1 : i64, of = @x, size = 3 : i64, sym_name = "eps_x_x_0"} : () -> ()
  "btc.trace"() {decay = 0.9 : f64, delay = 0 : i64, kind = "pre", num_states = 1 : i64, of = @h, size = 2 : i64, sym_name = "eps_x_h_0"} : () -> ()
  "btc.trace"() {correction = true, decay = 0.9 : f64, delay = 0 : i64, kind = "post", num_states = 1 : i64, of = @h, port = "y", size = 2 : i64, sym_name = "eps_f_h"} : () -> ()
  "btc.trace"() {correction = true, decay = 0.9 : f64, delay = 0 : i64, kind = "post", num_states = 1 : i64, of = @out, port = "y", size = 4 : i64, sym_name = "eps_f_out"} : () -> ()
  "btc.trace"() {decay = 1.0 : f64, delay = 0 : i64, kind = "bias", num_states = 1 : i64, of = @out, port = "y", size = 4 : i64, sym_name = "e_b_out"} : () -> ()
}

// CHECK: "btc.schedule"() ({
// CHECK-NEXT: "btc.learning_signal"() {group = @out}
// CHECK-NEXT: "btc.learning_signal"() {group = @h}
// CHECK-NEXT: "btc.update_pre_trace"() {trace = @eps_x_x_0}
// CHECK-NEXT: "btc.update_pre_trace"() {trace = @eps_x_h_0}
// CHECK-NEXT: "btc.update_post_trace"() {group = @h, trace = @eps_f_h}
// CHECK-NEXT: "btc.accumulate_grad"() {post_trace = @eps_f_h, pre_trace = @eps_x_x_0, projection = @x_to_h}
// CHECK-NEXT: "btc.update_post_trace"() {group = @out, trace = @eps_f_out}
// CHECK-NEXT: "btc.update_bias_trace"() {group = @out, trace = @e_b_out}
// CHECK-NEXT: "btc.accumulate_grad"() {post_trace = @eps_f_out, pre_trace = @eps_x_h_0, projection = @h_to_out}
// CHECK-NEXT: "btc.accumulate_bias_grad"() {projection = @h_to_out, trace = @e_b_out}
// CHECK-NEXT: "btc.yield"() : () -> ()
// CHECK-NEXT: }) {algorithm = "pp-prop"} : () -> ()
