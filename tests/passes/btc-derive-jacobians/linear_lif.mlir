// RUN: btc-opt --pipeline "btc-derive-jacobians"
// v' = 0.9 v + y, spike H(v - 1) with a sigmoid surrogate (slope 4). Expected, by hand:
// step yields (v', D = dv'/dv = 0.9, Df = dv'/dy = 1); spike yields (s, ds/dv = 4 z (1 - z)),
// z = 1 / (1 + exp(-4 (v - 1))). The groups' own regions are left as they were.

module attributes {btc.batch = 2 : i64, btc.chunk = 4 : i64} {
  "btc.group"() ({
  ^bb0(%v: f32, %y: f32):
    %leak = arith.constant 0.9 : f32
    %0 = arith.mulf %v, %leak : f32
    %1 = arith.addf %0, %y : f32
    "btc.yield"(%1) : (f32) -> ()
  }, {
  ^bb0(%v: f32):
    %theta = arith.constant 1.0 : f32
    %0 = arith.subf %v, %theta : f32
    %1 = "btc.spike"(%0) {slope = 4.0 : f64, surrogate = "sigmoid"} : (f32) -> f32
    "btc.yield"(%1) : (f32) -> ()
  }) {init = [0.0 : f32], model = "lif", ports = ["y"], size = 2 : i64, states = ["v"], sym_name = "h"} : () -> ()
}

// CHECK: "btc.group"()
// CHECK: sym_name = "h"
// CHECK-NEXT: "btc.derivatives"() ({
// CHECK-NEXT: ^bb0(%arg0: f32, %arg1: f32):
// CHECK-NEXT: [[SEED_V:%[a-z_0-9]+]] = arith.constant 1.000000e+00 : f32
// CHECK-NEXT: [[SEED_Y:%[a-z_0-9]+]] = arith.constant 1.000000e+00 : f32
// CHECK-NEXT: [[LEAK:%[a-z_0-9]+]] = arith.constant 0.899999976 : f32
// CHECK-NEXT: [[VL:%[0-9]+]] = arith.mulf %arg0, [[LEAK]] : f32
// CHECK-NEXT: [[D:%[0-9]+]] = arith.mulf [[SEED_V]], [[LEAK]] : f32
// CHECK-NEXT: [[VNEW:%[0-9]+]] = arith.addf [[VL]], %arg1 : f32
// CHECK-NEXT: "btc.yield"([[VNEW]], [[D]], [[SEED_Y]]) : (f32, f32, f32) -> ()
// CHECK-NEXT: }, {
// CHECK-NEXT: ^bb0(%arg0: f32):
// CHECK-NEXT: [[SEED:%[a-z_0-9]+]] = arith.constant 1.000000e+00 : f32
// CHECK: [[X:%[0-9]+]] = arith.subf %arg0, %{{.*}} : f32
// CHECK-NEXT: [[S:%[0-9]+]] = "btc.spike"([[X]]) {slope = 4.000000e+00 : f64, surrogate = "sigmoid"}
// CHECK: [[MS:%[a-z_0-9]+]] = arith.constant -4.000000e+00 : f32
// CHECK-NEXT: [[E0:%[0-9]+]] = arith.mulf [[MS]], [[X]] : f32
// CHECK-NEXT: [[E:%[0-9]+]] = math.exp [[E0]] : f32
// CHECK-NEXT: [[DEN:%[0-9]+]] = arith.addf %{{.*}}, [[E]] : f32
// CHECK-NEXT: [[Z:%[0-9]+]] = arith.divf %{{.*}}, [[DEN]] : f32
// CHECK-NEXT: [[SLOPE:%[a-z_0-9]+]] = arith.constant 4.000000e+00 : f32
// CHECK: [[OMZ:%[0-9]+]] = arith.subf %{{.*}}, [[Z]] : f32
// CHECK-NEXT: [[ZZ:%[0-9]+]] = arith.mulf [[Z]], [[OMZ]] : f32
// CHECK-NEXT: [[G:%[0-9]+]] = arith.mulf [[SLOPE]], [[ZZ]] : f32
// CHECK-NEXT: [[DSDV:%[0-9]+]] = arith.mulf [[G]], [[SEED]] : f32
// CHECK-NEXT: "btc.yield"([[S]], [[DSDV]]) : (f32, f32) -> ()
// CHECK-NEXT: }) {group = @h, num_states = 1 : i64}
