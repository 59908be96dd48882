// RUN: btc-opt --pipeline "btc-derive-jacobians"
// Two states (v, i): v' = 0.5 v + i, i' = 0.25 i + y; spike H(v - 1), triangle surrogate (width 2).
// By hand, D is row-major D[s][s'] = ds'_new/ds: [[0.5, 1], [0, 0.25]], Df = [0, 1];
// ds/dv = max(1 - |v-1|/2, 0)/2 and ds/di = 0.

module attributes {btc.batch = 2 : i64, btc.chunk = 4 : i64} {
  "btc.group"() ({
  ^bb0(%v: f32, %i: f32, %y: f32):
    %a = arith.constant 0.5 : f32
    %b = arith.constant 0.25 : f32
    %0 = arith.mulf %v, %a : f32
    %1 = arith.addf %0, %i : f32
    %2 = arith.mulf %i, %b : f32
    %3 = arith.addf %2, %y : f32
    "btc.yield"(%1, %3) : (f32, f32) -> ()
  }, {
  ^bb0(%v: f32, %i: f32):
    %theta = arith.constant 1.0 : f32
    %0 = arith.subf %v, %theta : f32
    %1 = "btc.spike"(%0) {slope = 2.0 : f64, surrogate = "triangle"} : (f32) -> f32
    "btc.yield"(%1) : (f32) -> ()
  }) {init = [0.0 : f32, 0.0 : f32], model = "lif", size = 2 : i64, states = ["v", "i"], sym_name = "h"} : () -> ()
}

// CHECK: "btc.derivatives"() ({
// CHECK-NEXT: ^bb0(%arg0: f32, %arg1: f32, %arg2: f32):
// CHECK-NEXT: [[SV:%[a-z_0-9]+]] = arith.constant 1.000000e+00 : f32
// CHECK-NEXT: [[SI:%[a-z_0-9]+]] = arith.constant 1.000000e+00 : f32
// CHECK-NEXT: [[SY:%[a-z_0-9]+]] = arith.constant 1.000000e+00 : f32
// CHECK-NEXT: [[A:%[a-z_0-9]+]] = arith.constant 5.000000e-01 : f32
// CHECK-NEXT: [[B:%[a-z_0-9]+]] = arith.constant 2.500000e-01 : f32
// CHECK-NEXT: [[VA:%[0-9]+]] = arith.mulf %arg0, [[A]] : f32
// CHECK-NEXT: [[DVV:%[0-9]+]] = arith.mulf [[SV]], [[A]] : f32
// CHECK-NEXT: [[VNEW:%[0-9]+]] = arith.addf [[VA]], %arg1 : f32
// CHECK-NEXT: [[IB:%[0-9]+]] = arith.mulf %arg1, [[B]] : f32
// CHECK-NEXT: [[DII:%[0-9]+]] = arith.mulf [[SI]], [[B]] : f32
// CHECK-NEXT: [[INEW:%[0-9]+]] = arith.addf [[IB]], %arg2 : f32
// CHECK-DAG: [[Z1:%[a-z_0-9]+]] = arith.constant 0.000000e+00 : f32
// CHECK-DAG: [[Z2:%[a-z_0-9]+]] = arith.constant 0.000000e+00 : f32
// CHECK-NEXT: "btc.yield"([[VNEW]], [[INEW]], [[DVV]], [[SI]], [[Z1]], [[DII]], [[Z2]], [[SY]])
// CHECK-NEXT: }, {
// CHECK-NEXT: ^bb0(%arg0: f32, %arg1: f32):
// CHECK-NEXT: [[SEED_V:%[a-z_0-9]+]] = arith.constant 1.000000e+00 : f32
// CHECK: [[X:%[0-9]+]] = arith.subf %arg0, %{{.*}} : f32
// CHECK-NEXT: [[S:%[0-9]+]] = "btc.spike"([[X]]) {slope = 2.000000e+00 : f64, surrogate = "triangle"}
// CHECK-NEXT: [[ABS:%[0-9]+]] = math.absf [[X]] : f32
// CHECK: [[HALF:%[a-z_0-9]+]] = arith.constant 5.000000e-01 : f32
// CHECK-NEXT: [[SC:%[0-9]+]] = arith.mulf [[ABS]], [[HALF]] : f32
// CHECK-NEXT: [[R:%[0-9]+]] = arith.subf %{{.*}}, [[SC]] : f32
// CHECK: [[M:%[0-9]+]] = arith.maximumf [[R]], %{{.*}} : f32
// CHECK: [[G:%[0-9]+]] = arith.mulf [[M]], %{{.*}} : f32
// CHECK-NEXT: [[DSDV:%[0-9]+]] = arith.mulf [[G]], [[SEED_V]] : f32
// CHECK-NEXT: [[ZERO:%[a-z_0-9]+]] = arith.constant 0.000000e+00 : f32
// CHECK-NEXT: "btc.yield"([[S]], [[DSDV]], [[ZERO]]) : (f32, f32, f32) -> ()
// CHECK-NEXT: }) {group = @h, num_states = 2 : i64}
