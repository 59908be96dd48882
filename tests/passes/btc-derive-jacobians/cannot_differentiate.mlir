// RUN: btc-opt --pipeline "btc-derive-jacobians"
// An op without a derivative rule is refused by name, with the group and region.
// EXPECT-ERROR: btc-derive-jacobians: group @h \(dynamics\): cannot differentiate math\.sin; supported:

module attributes {btc.batch = 2 : i64, btc.chunk = 4 : i64} {
  "btc.group"() ({
  ^bb0(%v: f32, %y: f32):
    %0 = math.sin %v : f32
    %1 = arith.addf %0, %y : f32
    "btc.yield"(%1) : (f32) -> ()
  }, {
  ^bb0(%v: f32):
    %0 = "btc.spike"(%v) {slope = 4.0 : f64, surrogate = "sigmoid"} : (f32) -> f32
    "btc.yield"(%0) : (f32) -> ()
  }) {init = [0.0 : f32], model = "lif", size = 2 : i64, states = ["v"], sym_name = "h"} : () -> ()
}
