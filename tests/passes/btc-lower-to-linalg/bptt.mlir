// RUN: btc-opt --pipeline "btc-lower-to-linalg,btc-check-lowered"
// The input is the post-btc-rewrite-online module of x[3] -> h (2 LIF neurons) -> out[4], h_to_out
// biased, B = 2, K = 4 (generated once by btc-analyse..btc-rewrite-online from a hand-written model,
// pre/post decays 0.5/0.25). Checked: functions, globals and key ops, not module attributes.
// btc-check-lowered runs after, so no btc op may be left.
// BPTT: one forward step per call returning (loss, readout, the step's tape entries); the runtime
// holds the tape and feeds it back to bptt_backward_step. No traces, no train_chunk.

module attributes {btc.batch = 2 : i64, btc.chunk = 4 : i64, btc.order = ["h", "out"]} {
  "btc.input"() {binary = true, size = 3 : i64, sym_name = "x"} : () -> ()
  "btc.group"() ({
  ^bb0(%arg0: f32, %arg1: f32):
    %cst = arith.constant 0.899999976 : f32
    %0 = arith.mulf %arg0, %cst : f32
    %1 = arith.addf %0, %arg1 : f32
    "btc.yield"(%1) : (f32) -> ()
  }, {
  ^bb0(%arg0: f32):
    %cst = arith.constant 1.000000e+00 : f32
    %0 = arith.subf %arg0, %cst : f32
    %1 = "btc.spike"(%0) {slope = 4.000000e+00 : f64, surrogate = "fast_sigmoid"} : (f32) -> f32
    "btc.yield"(%1) : (f32) -> ()
  }) {btc.binary = true, init = [0.000000e+00 : f32], model = "lif", ports = ["y"], size = 2 : i64, states = ["v"], sym_name = "h"} : () -> ()
  "btc.readout"() ({
  ^bb0(%arg0: f32, %arg1: f32):
    %cst = arith.constant 8.000000e-01 : f32
    %0 = arith.mulf %arg0, %cst : f32
    %1 = arith.addf %0, %arg1 : f32
    "btc.yield"(%1) : (f32) -> ()
  }) {btc.binary = false, init = [0.000000e+00 : f32], size = 4 : i64, states = ["r"], sym_name = "out"} : () -> ()
  "btc.projection"() {bias = false, post = @h, pre = @x, recurrent = false, sym_name = "x_to_h"} : () -> ()
  "btc.projection"() {bias = true, post = @out, pre = @h, recurrent = false, sym_name = "h_to_out"} : () -> ()
  "btc.loss"() {kind = "cross_entropy", readout = @out} : () -> ()
  "btc.derivatives"() ({
  ^bb0(%arg0: f32, %arg1: f32):
    %cst = arith.constant 1.000000e+00 : f32
    %cst_0 = arith.constant 1.000000e+00 : f32
    %cst_1 = arith.constant 0.899999976 : f32
    %0 = arith.mulf %arg0, %cst_1 : f32
    %1 = arith.mulf %cst, %cst_1 : f32
    %2 = arith.addf %0, %arg1 : f32
    "btc.yield"(%2, %1, %cst_0) : (f32, f32, f32) -> ()
  }, {
  ^bb0(%arg0: f32):
    %cst = arith.constant 1.000000e+00 : f32
    %cst_0 = arith.constant 1.000000e+00 : f32
    %0 = arith.subf %arg0, %cst_0 : f32
    %1 = "btc.spike"(%0) {slope = 4.000000e+00 : f64, surrogate = "fast_sigmoid"} : (f32) -> f32
    %2 = math.absf %0 : f32
    %cst_1 = arith.constant 4.000000e+00 : f32
    %3 = arith.mulf %cst_1, %2 : f32
    %cst_2 = arith.constant 1.000000e+00 : f32
    %4 = arith.addf %3, %cst_2 : f32
    %cst_3 = arith.constant 1.000000e+00 : f32
    %5 = arith.mulf %4, %4 : f32
    %6 = arith.divf %cst_3, %5 : f32
    %7 = arith.mulf %6, %cst : f32
    "btc.yield"(%1, %7) : (f32, f32) -> ()
  }) {group = @h, num_states = 1 : i64} : () -> ()
  "btc.derivatives"() ({
  ^bb0(%arg0: f32, %arg1: f32):
    %cst = arith.constant 1.000000e+00 : f32
    %cst_0 = arith.constant 1.000000e+00 : f32
    %cst_1 = arith.constant 8.000000e-01 : f32
    %0 = arith.mulf %arg0, %cst_1 : f32
    %1 = arith.mulf %cst, %cst_1 : f32
    %2 = arith.addf %0, %arg1 : f32
    "btc.yield"(%2, %1, %cst_0) : (f32, f32, f32) -> ()
  }, {
  }) {group = @out, num_states = 1 : i64} : () -> ()
  "btc.schedule"() ({
    "btc.bptt_backward"() : () -> ()
    "btc.yield"() : () -> ()
  }) {algorithm = "bptt"} : () -> ()
}

// CHECK: func.func @bptt_forward_step(%arg0: tensor<2x3xf32>, %arg1: tensor<2xi32>, %arg2: tensor<f32>) -> (tensor<f32>, tensor<2x4xf32>, tensor<2x4xf32>, {{.*}}) {
// CHECK: linalg.matmul ins(%arg0, %p0 : tensor<2x3xf32>, tensor<3x2xf32>)
// CHECK: func.func @bptt_begin_backward() {
// CHECK: func.func @bptt_backward_step(%arg0: tensor<2x3xf32>, %arg1: tensor<2x4xf32>, {{.*}}) {
// the weight gradient: x_t^T [I, B] (delta) [B, O], accumulated into the gradient global
// CHECK: [[G0:%[A-Za-z0-9_]+]] = util.global.load @g0 : tensor<3x2xf32>
// CHECK: [[GW:%[0-9]+]] = linalg.matmul indexing_maps = {{.*}} ins(%arg0, %{{.*}} : tensor<2x3xf32>, tensor<2x2xf32>) outs([[G0]] : tensor<3x2xf32>)
// CHECK: util.global.store [[GW]], @g0 : tensor<3x2xf32>
// CHECK: func.func @infer_chunk(%arg0: tensor<4x2x3xf32>) -> tensor<4x2x4xf32>
// CHECK-NOT: @train_chunk
// CHECK-NOT: @tr_
