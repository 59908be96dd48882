// RUN: btc-opt --pipeline "btc-rewrite-online"
// h learns a per-neuron threshold theta: its exact trace is updated and its gradient accumulated
// after h's own traces, before the gradients of the projections into h.

module attributes {btc.batch = 2 : i64, btc.chunk = 4 : i64, btc.order = ["h", "out"]} {
  "btc.input"() {binary = true, size = 3 : i64, sym_name = "x"} : () -> ()
  "btc.group"() ({
  ^bb0(%v: f32, %y: f32, %theta: f32):
    %0 = arith.addf %v, %y : f32
    "btc.yield"(%0) : (f32) -> ()
  }, {
  ^bb0(%v: f32, %theta: f32):
    %0 = "btc.spike"(%v) {slope = 4.0 : f64, surrogate = "sigmoid"} : (f32) -> f32
    "btc.yield"(%0) : (f32) -> ()
  }) {init = [0.0 : f32], model = "lif", params = ["theta"], size = 2 : i64, states = ["v"], sym_name = "h"} : () -> ()
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
  "btc.trace"() {decay = 1.0 : f64, delay = 0 : i64, kind = "elem", num_states = 1 : i64, of = @h, param = "theta", size = 2 : i64, sym_name = "e_p_h_theta"} : () -> ()
}

// CHECK: "btc.update_post_trace"() {group = @h, trace = @eps_f_h}
// CHECK-NEXT: "btc.update_elem_trace"() {group = @h, trace = @e_p_h_theta}
// CHECK-NEXT: "btc.accumulate_elem_grad"() {group = @h, trace = @e_p_h_theta}
// CHECK-NEXT: "btc.accumulate_grad"() {post_trace = @eps_f_h, pre_trace = @eps_x_x_0, projection = @x_to_h}
// CHECK-NEXT: "btc.update_post_trace"() {group = @out, trace = @eps_f_out}
