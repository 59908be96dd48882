// RUN: btc-opt --pipeline "btc-check-lowered"
// A btc op deep inside a function body (here in an scf.for) is found too.
// EXPECT-ERROR: btc-check-lowered: 1 btc op\(s\) were not lowered: \['btc\.spike'\]

module {
  func.func @f(%v: f32) -> f32 {
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %r = scf.for %i = %c0 to %c1 step %c1 iter_args(%acc = %v) -> (f32) {
      %s = "btc.spike"(%acc) {slope = 4.0 : f64, surrogate = "sigmoid"} : (f32) -> f32
      scf.yield %s : f32
    }
    return %r : f32
  }
}
