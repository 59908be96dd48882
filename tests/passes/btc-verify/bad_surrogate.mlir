// RUN: btc-opt --pipeline "btc-verify"
// A btc.spike with an unknown surrogate is named, with the choices.
// EXPECT-ERROR: btc-verify: btc\.spike: attribute 'surrogate' is 'gauss'; expected one of \['sigmoid', 'fast_sigmoid', 'arctan', 'triangle'\]

module attributes {btc.batch = 2 : i64, btc.chunk = 4 : i64} {
  "btc.input"() {binary = true, size = 2 : i64, sym_name = "x"} : () -> ()
  "btc.group"() ({
  ^bb0(%v: f32, %y: f32):
    %0 = arith.addf %v, %y : f32
    "btc.yield"(%0) : (f32) -> ()
  }, {
  ^bb0(%v: f32):
    %0 = "btc.spike"(%v) {slope = 4.0 : f64, surrogate = "gauss"} : (f32) -> f32
    "btc.yield"(%0) : (f32) -> ()
  }) {init = [0.0 : f32], model = "lif", size = 2 : i64, states = ["v"], sym_name = "h"} : () -> ()
}
