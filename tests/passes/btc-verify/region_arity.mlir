// RUN: btc-opt --pipeline "btc-verify"
// A group's dynamics must take (states..., ports..., params...): here one argument short.
// EXPECT-ERROR: btc-verify: btc\.group h: region dynamics takes 1 arguments, expected 2

module attributes {btc.batch = 2 : i64, btc.chunk = 4 : i64} {
  "btc.group"() ({
  ^bb0(%v: f32):
    "btc.yield"(%v) : (f32) -> ()
  }, {
  ^bb0(%v: f32):
    %0 = "btc.spike"(%v) {slope = 4.0 : f64, surrogate = "sigmoid"} : (f32) -> f32
    "btc.yield"(%0) : (f32) -> ()
  }) {init = [0.0 : f32], model = "lif", size = 2 : i64, states = ["v"], sym_name = "h"} : () -> ()
}
