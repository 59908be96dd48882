// RUN: btc-opt --pipeline "btc-plan-traces{budget=lots}"
// A value of the wrong type is refused, naming the pass, option and value.
// EXPECT-ERROR: btc-plan-traces: option budget=lots: expected an integer

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
