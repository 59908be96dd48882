// RUN: btc-opt --pipeline "btc-plan-traces{algorithm=pp-prop decay_pre=0.5 decay_post=0.25 correction=false overrides={h_to_out=d-rtrl}}"
// pp-prop with its own decays and no bias correction, and h_to_out forced to D-RTRL: x_to_h keeps
// the pair (eps_x_x_0 at 0.5, eps_f_h at 0.25); h's spikes need no presynaptic trace.

module attributes {btc.batch = 2 : i64, btc.chunk = 4 : i64, btc.order = ["h", "out"]} {
  "btc.input"() {binary = true, size = 3 : i64, sym_name = "x"} : () -> ()
  "btc.group"() ({
  ^bb0(%v: f32, %i: f32, %y: f32):
    %0 = arith.addf %v, %i : f32
    %1 = arith.addf %i, %y : f32
    "btc.yield"(%0, %1) : (f32, f32) -> ()
  }, {
  ^bb0(%v: f32, %i: f32):
    %0 = "btc.spike"(%v) {slope = 4.0 : f64, surrogate = "sigmoid"} : (f32) -> f32
    "btc.yield"(%0) : (f32) -> ()
  }) {init = [0.0 : f32, 0.0 : f32], model = "lif", size = 2 : i64, states = ["v", "i"], sym_name = "h"} : () -> ()
  "btc.readout"() ({
  ^bb0(%r: f32, %y: f32):
    %0 = arith.addf %r, %y : f32
    "btc.yield"(%0) : (f32) -> ()
  }) {init = [0.0 : f32], size = 4 : i64, states = ["r"], sym_name = "out"} : () -> ()
  "btc.projection"() {bias = false, post = @h, pre = @x, recurrent = false, sym_name = "x_to_h"} : () -> ()
  "btc.projection"() {bias = true, post = @out, pre = @h, recurrent = false, sym_name = "h_to_out"} : () -> ()
  "btc.loss"() {kind = "cross_entropy", readout = @out} : () -> ()
}

// CHECK: "btc.trace"() {decay = 5.000000e-01 : f64, delay = 0 : i64, kind = "pre", num_states = 1 : i64, of = @x, size = 3 : i64, sym_name = "eps_x_x_0"}
// CHECK-NEXT: "btc.trace"() {correction = false, decay = 2.500000e-01 : f64, delay = 0 : i64, kind = "post", num_states = 2 : i64, of = @h, port = "y", size = 2 : i64, sym_name = "eps_f_h"}
// CHECK-NEXT: "btc.trace"() {{{.*}}kind = "dense", num_states = 1 : i64, of = @h_to_out, rows = 2 : i64, size = 4 : i64, sym_name = "e_W_h_to_out"}
// CHECK-NEXT: "btc.trace"() {{{.*}}kind = "bias"{{.*}}sym_name = "e_b_out"}
// CHECK-NOT: eps_x_h_0
// CHECK-NOT: eps_f_out
