// RUN: btc-opt --pipeline "btc-derive-jacobians"
// A readout r' = 0.8 r + y has a step (D = 0.8, Df = 1) and no spike: its second region is empty.

module attributes {btc.batch = 2 : i64, btc.chunk = 4 : i64} {
  "btc.readout"() ({
  ^bb0(%r: f32, %y: f32):
    %decay = arith.constant 0.8 : f32
    %0 = arith.mulf %r, %decay : f32
    %1 = arith.addf %0, %y : f32
    "btc.yield"(%1) : (f32) -> ()
  }) {init = [0.0 : f32], size = 2 : i64, states = ["r"], sym_name = "out"} : () -> ()
}

// CHECK: "btc.derivatives"() ({
// CHECK-NEXT: ^bb0(%arg0: f32, %arg1: f32):
// CHECK-NEXT: [[SR:%[a-z_0-9]+]] = arith.constant 1.000000e+00 : f32
// CHECK-NEXT: [[SY:%[a-z_0-9]+]] = arith.constant 1.000000e+00 : f32
// CHECK-NEXT: [[DEC:%[a-z_0-9]+]] = arith.constant 8.000000e-01 : f32
// CHECK-NEXT: [[RD:%[0-9]+]] = arith.mulf %arg0, [[DEC]] : f32
// CHECK-NEXT: [[D:%[0-9]+]] = arith.mulf [[SR]], [[DEC]] : f32
// CHECK-NEXT: [[RNEW:%[0-9]+]] = arith.addf [[RD]], %arg1 : f32
// CHECK-NEXT: "btc.yield"([[RNEW]], [[D]], [[SY]]) : (f32, f32, f32) -> ()
// CHECK-NEXT: }, {
// CHECK-NEXT: }) {group = @out, num_states = 1 : i64}
// CHECK-NOT: btc.spike
