// RUN: btc-opt --pipeline "btc-derive-jacobians"
// A learned per-neuron parameter theta and a detached reset: v' = v - sg(H(v)) theta + y.
// By hand: D = 1 (the reset is stop_gradient'ed), Df = 1, Dp = dv'/dtheta = -sg(H(v));
// spike s = H(v - theta), arctan surrogate (slope 3): ds/dv = g, ds/dtheta = -g,
// g = 1.5 / (1 + (3 pi/2 (v - theta))^2).

module attributes {btc.batch = 2 : i64, btc.chunk = 4 : i64} {
  "btc.group"() ({
  ^bb0(%v: f32, %y: f32, %theta: f32):
    %s = "btc.spike"(%v) {slope = 1.0 : f64, surrogate = "fast_sigmoid"} : (f32) -> f32
    %r = "btc.stop_gradient"(%s) : (f32) -> f32
    %reset = arith.mulf %r, %theta : f32
    %0 = arith.subf %v, %reset : f32
    %1 = arith.addf %0, %y : f32
    "btc.yield"(%1) : (f32) -> ()
  }, {
  ^bb0(%v: f32, %theta: f32):
    %0 = arith.subf %v, %theta : f32
    %1 = "btc.spike"(%0) {slope = 3.0 : f64, surrogate = "arctan"} : (f32) -> f32
    "btc.yield"(%1) : (f32) -> ()
  }) {init = [0.0 : f32], model = "lif", params = ["theta"], size = 2 : i64, states = ["v"], sym_name = "h"} : () -> ()
}

// CHECK: "btc.derivatives"() ({
// CHECK-NEXT: ^bb0(%arg0: f32, %arg1: f32, %arg2: f32):
// CHECK-NEXT: [[SV:%[a-z_0-9]+]] = arith.constant 1.000000e+00 : f32
// CHECK-NEXT: [[SY:%[a-z_0-9]+]] = arith.constant 1.000000e+00 : f32
// CHECK-NEXT: [[SP:%[a-z_0-9]+]] = arith.constant 1.000000e+00 : f32
// CHECK: [[SG:%[0-9]+]] = "btc.stop_gradient"(%{{.*}}) : (f32) -> f32
// CHECK-NEXT: [[RESET:%[0-9]+]] = arith.mulf [[SG]], %arg2 : f32
// CHECK-NEXT: [[DRESET:%[0-9]+]] = arith.mulf [[SG]], [[SP]] : f32
// CHECK-NEXT: [[V1:%[0-9]+]] = arith.subf %arg0, [[RESET]] : f32
// CHECK-NEXT: [[DP:%[0-9]+]] = arith.negf [[DRESET]] : f32
// CHECK-NEXT: [[VNEW:%[0-9]+]] = arith.addf [[V1]], %arg1 : f32
// CHECK-NEXT: "btc.yield"([[VNEW]], [[SV]], [[SY]], [[DP]]) : (f32, f32, f32, f32) -> ()
// CHECK-NEXT: }, {
// CHECK-NEXT: ^bb0(%arg0: f32, %arg1: f32):
// CHECK-NEXT: [[SEED_V:%[a-z_0-9]+]] = arith.constant 1.000000e+00 : f32
// CHECK-NEXT: [[SEED_P:%[a-z_0-9]+]] = arith.constant 1.000000e+00 : f32
// CHECK-NEXT: [[X:%[0-9]+]] = arith.subf %arg0, %arg1 : f32
// CHECK-NEXT: [[DX_P:%[0-9]+]] = arith.negf [[SEED_P]] : f32
// CHECK-NEXT: [[S:%[0-9]+]] = "btc.spike"([[X]]) {slope = 3.000000e+00 : f64, surrogate = "arctan"}
// CHECK: [[K:%[a-z_0-9]+]] = arith.constant 4.71238899 : f32
// CHECK-NEXT: [[U:%[0-9]+]] = arith.mulf [[K]], [[X]] : f32
// CHECK-NEXT: [[NUM:%[a-z_0-9]+]] = arith.constant 1.500000e+00 : f32
// CHECK: [[UU:%[0-9]+]] = arith.mulf [[U]], [[U]] : f32
// CHECK-NEXT: [[DEN:%[0-9]+]] = arith.addf %{{.*}}, [[UU]] : f32
// CHECK-NEXT: [[G:%[0-9]+]] = arith.divf [[NUM]], [[DEN]] : f32
// CHECK-NEXT: [[DSDV:%[0-9]+]] = arith.mulf [[G]], [[SEED_V]] : f32
// CHECK-NEXT: [[DSDP:%[0-9]+]] = arith.mulf [[G]], [[DX_P]] : f32
// CHECK-NEXT: "btc.yield"([[S]], [[DSDV]], [[DSDP]]) : (f32, f32, f32) -> ()
