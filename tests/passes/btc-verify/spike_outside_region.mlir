// RUN: btc-opt --pipeline "btc-verify"
// Region-only ops may not sit at module level.
// EXPECT-ERROR: btc-verify: btc\.spike: belongs in a region, found in a module

module attributes {btc.batch = 2 : i64, btc.chunk = 4 : i64} {
  %c = arith.constant 0.5 : f32
  %s = "btc.spike"(%c) {slope = 4.0 : f64, surrogate = "sigmoid"} : (f32) -> f32
}
