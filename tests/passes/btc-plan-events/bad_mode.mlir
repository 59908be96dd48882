// RUN: btc-opt --pipeline "btc-analyse,btc-plan-events{mode=sometimes}"
// An unknown mode is refused, naming the choices.
// EXPECT-ERROR: btc-plan-events: mode must be one of \['auto', 'on', 'off'\], got 'sometimes'

module attributes {btc.batch = 32 : i64, btc.chunk = 100 : i64} {
  "btc.input"() {binary = true, size = 1024 : i64, sym_name = "x"} : () -> ()
  "btc.input"() {binary = false, size = 1024 : i64, sym_name = "u"} : () -> ()
  "btc.group"() ({
  ^bb0(%v: f32, %y: f32):
    %0 = arith.addf %v, %y : f32
    "btc.yield"(%0) : (f32) -> ()
  }, {
  ^bb0(%v: f32):
    %0 = "btc.spike"(%v) {slope = 4.0 : f64, surrogate = "sigmoid"} : (f32) -> f32
    "btc.yield"(%0) : (f32) -> ()
  }) {init = [0.0 : f32], model = "lif", size = 1024 : i64, states = ["v"], sym_name = "h"} : () -> ()
  "btc.readout"() ({
  ^bb0(%r: f32, %y: f32):
    %0 = arith.addf %r, %y : f32
    "btc.yield"(%0) : (f32) -> ()
  }) {init = [0.0 : f32], size = 2 : i64, states = ["r"], sym_name = "out"} : () -> ()
  "btc.projection"() {bias = false, post = @h, pre = @x, recurrent = false, sym_name = "x_to_h"} : () -> ()
  "btc.projection"() {bias = false, post = @h, pre = @u, recurrent = false, sym_name = "u_to_h"} : () -> ()
  "btc.projection"() {bias = false, post = @out, pre = @h, recurrent = false, sym_name = "h_to_out"} : () -> ()
  "btc.loss"() {kind = "mse", readout = @out} : () -> ()
}

