// RUN: btc-opt --pipeline "btc-lower-to-linalg,btc-check-lowered"
// The input is the post-btc-rewrite-online module of x[3] -> h (2 LIF neurons) -> out[4], h_to_out
// biased, B = 2, K = 4 (generated once by btc-analyse..btc-rewrite-online from a hand-written model,
// pre/post decays 0.5/0.25). Checked: functions, globals and key ops, not module attributes.
// btc-check-lowered runs after, so no btc op may be left.
// pp-prop, Adam, default unroll (4 steps per scf.for iteration at this size).

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
  "btc.trace"() {decay = 5.000000e-01 : f64, delay = 0 : i64, kind = "pre", num_states = 1 : i64, of = @x, size = 3 : i64, sym_name = "eps_x_x_0"} : () -> ()
  "btc.trace"() {decay = 5.000000e-01 : f64, delay = 0 : i64, kind = "pre", num_states = 1 : i64, of = @h, size = 2 : i64, sym_name = "eps_x_h_0"} : () -> ()
  "btc.trace"() {correction = true, decay = 2.500000e-01 : f64, delay = 0 : i64, kind = "post", num_states = 1 : i64, of = @h, port = "y", size = 2 : i64, sym_name = "eps_f_h"} : () -> ()
  "btc.trace"() {correction = true, decay = 2.500000e-01 : f64, delay = 0 : i64, kind = "post", num_states = 1 : i64, of = @out, port = "y", size = 4 : i64, sym_name = "eps_f_out"} : () -> ()
  "btc.trace"() {decay = 1.000000e+00 : f64, delay = 0 : i64, kind = "bias", num_states = 1 : i64, of = @out, port = "y", size = 4 : i64, sym_name = "e_b_out"} : () -> ()
  "btc.schedule"() ({
    "btc.learning_signal"() {group = @out} : () -> ()
    "btc.learning_signal"() {group = @h} : () -> ()
    "btc.update_pre_trace"() {trace = @eps_x_x_0} : () -> ()
    "btc.update_pre_trace"() {trace = @eps_x_h_0} : () -> ()
    "btc.update_post_trace"() {group = @h, trace = @eps_f_h} : () -> ()
    "btc.accumulate_grad"() {post_trace = @eps_f_h, pre_trace = @eps_x_x_0, projection = @x_to_h} : () -> ()
    "btc.update_post_trace"() {group = @out, trace = @eps_f_out} : () -> ()
    "btc.update_bias_trace"() {group = @out, trace = @e_b_out} : () -> ()
    "btc.accumulate_grad"() {post_trace = @eps_f_out, pre_trace = @eps_x_h_0, projection = @h_to_out} : () -> ()
    "btc.accumulate_bias_grad"() {projection = @h_to_out, trace = @e_b_out} : () -> ()
    "btc.yield"() : () -> ()
  }) {algorithm = "pp-prop"} : () -> ()
}

// CHECK-DAG: util.global private mutable @p0 = {{.*}} : tensor<3x2xf32>
// CHECK-DAG: util.global private mutable @p1 = {{.*}} : tensor<2x4xf32>
// CHECK-DAG: util.global private mutable @p2 = {{.*}} : tensor<4xf32>
// CHECK-DAG: util.global private mutable @g0 = {{.*}} : tensor<3x2xf32>
// CHECK-DAG: util.global private mutable @m0 = {{.*}} : tensor<3x2xf32>
// CHECK-DAG: util.global private mutable @u0 = {{.*}} : tensor<3x2xf32>
// CHECK-DAG: util.global private mutable @h_h_v = {{.*}} : tensor<2x2xf32>
// CHECK-DAG: util.global private mutable @h_out_r = {{.*}} : tensor<2x4xf32>
// CHECK-DAG: util.global private mutable @tr_eps_x_x_0_0 = {{.*}} : tensor<2x3xf32>
// CHECK-DAG: util.global private mutable @tr_eps_x_h_0_0 = {{.*}} : tensor<2x2xf32>
// CHECK-DAG: util.global private mutable @tr_eps_f_h_0 = {{.*}} : tensor<2x2xf32>
// CHECK-DAG: util.global private mutable @tr_eps_f_out_0 = {{.*}} : tensor<2x4xf32>
// CHECK-DAG: util.global private mutable @tr_e_b_out_0 = {{.*}} : tensor<2x4xf32>
// CHECK: func.func @train_chunk(%arg0: tensor<4x2x3xf32>, %arg1: tensor<4x2xi32>, %arg2: tensor<4xf32>) -> (tensor<f32>, tensor<2x4xf32>) {
// CHECK: [[W0:%[A-Za-z0-9_]+]] = util.global.load @p0 : tensor<3x2xf32>
// CHECK: [[EPSX:%[A-Za-z0-9_]+]] = util.global.load @tr_eps_x_x_0_0 : tensor<2x3xf32>
// CHECK: [[G0:%[A-Za-z0-9_]+]] = util.global.load @g0 : tensor<3x2xf32>
// the input's drive x @ W0 for all 4 steps at once, before the loop
// CHECK: [[XS:%collapsed[_0-9]*]] = tensor.collapse_shape %arg0 {{\[}}[0, 1], [2]] : tensor<4x2x3xf32> into tensor<8x3xf32>
// CHECK: [[XW:%[0-9]+]] = linalg.matmul ins([[XS]], [[W0]] : tensor<8x3xf32>, tensor<3x2xf32>) outs(%{{.*}} : tensor<8x2xf32>) -> tensor<8x2xf32>
// CHECK: [[DRIVE:%expanded[_0-9]*]] = tensor.expand_shape [[XW]] {{\[}}[0, 1], [2]] output_shape [4, 2, 2] : tensor<8x2xf32> into tensor<4x2x2xf32>
// CHECK: [[LOOP:%[0-9]+]]:{{[0-9]+}} = scf.for %arg3 = %c0 to %c4{{.*}} step %c4 iter_args({{.*}}[[EPSV:%arg[0-9]+]] = [[EPSX]]{{.*}}[[GV:%arg[0-9]+]] = [[G0]]
// forward: x_t [B, I] @ W [I, O]
// CHECK: [[XT:%extracted_slice[_0-9]*]] = tensor.extract_slice %arg0[%arg3, 0, 0] [1, 2, 3] [1, 1, 1] : tensor<4x2x3xf32> to tensor<2x3xf32>
// CHECK: tensor.extract_slice [[DRIVE]][%arg3, 0, 0] [1, 2, 2] [1, 1, 1] : tensor<4x2x2xf32> to tensor<2x2xf32>
// eps_x = 0.5 eps_x + x_t (decay_pre), then grad W0 += eps_x^T (eps_f * delta), accumulated in the loop
// the cross-entropy gradient (softmax - onehot) * w, w = mask_t / B the step's weight, inside the loop
// CHECK: [[MT:%extracted[_0-9]*]] = tensor.extract %arg2[%arg3] : tensor<4xf32>
// CHECK-NEXT: [[W:%[0-9]+]] = arith.mulf [[MT]], %cst{{[_0-9]*}} : f32
// CHECK: arith.cmpi eq, %{{[0-9]+}}, %{{[0-9]+}} : index
// CHECK-NEXT: [[OH:%[0-9]+]] = arith.uitofp %{{[0-9]+}} : i1 to f32
// CHECK-NEXT: [[D:%[0-9]+]] = arith.subf %in, %in_{{[0-9]+}} : f32
// CHECK-NEXT: [[E:%[0-9]+]] = math.exp [[D]] : f32
// CHECK-NEXT: [[P:%[0-9]+]] = arith.divf [[E]], %in_{{[0-9]+}} : f32
// CHECK-NEXT: [[Q:%[0-9]+]] = arith.subf [[P]], [[OH]] : f32
// CHECK-NEXT: arith.mulf [[Q]], [[W]] : f32
// CHECK: [[NEWEPS:%[0-9]+]] = linalg.generic {{.*}} ins([[EPSV]], [[XT]] : tensor<2x3xf32>, tensor<2x3xf32>)
// CHECK-NEXT: ^bb0
// CHECK-NEXT: [[A:%cst_[0-9]+]] = arith.constant 5.000000e-01 : f32
// CHECK-NEXT: [[AE:%[0-9]+]] = arith.mulf %in, [[A]] : f32
// CHECK-NEXT: arith.addf [[AE]], %in_{{[0-9]+}} : f32
// CHECK: linalg.matmul indexing_maps = {{.*}} ins([[NEWEPS]], %{{.*}} : tensor<2x3xf32>, tensor<2x2xf32>) outs([[GV]] : tensor<3x2xf32>) -> tensor<3x2xf32>
// CHECK: util.global.store [[LOOP]]#{{[0-9]+}}, @g0 : tensor<3x2xf32>
// CHECK: return
// CHECK-DAG: func.func @infer_chunk(%arg0: tensor<4x2x3xf32>) -> tensor<4x2x4xf32>
// CHECK-DAG: func.func @record_step(%arg0: tensor<2x3xf32>) -> (tensor<2x4xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x4xf32>)
// CHECK-DAG: func.func @reset_state()
// CHECK-DAG: func.func @get_params() -> (tensor<3x2xf32>, tensor<2x4xf32>, tensor<4xf32>)
// CHECK-DAG: func.func @get_grads() -> (tensor<3x2xf32>, tensor<2x4xf32>, tensor<4xf32>)
// CHECK-DAG: func.func @set_params(%arg0: tensor<3x2xf32>, %arg1: tensor<2x4xf32>, %arg2: tensor<4xf32>)
// CHECK-DAG: func.func @reset_optimizer()
// CHECK-DAG: func.func @zero_grads()
// CHECK-DAG: func.func @apply_update(%arg0: tensor<f32>)
// CHECK-NOT: func.func @bptt_forward_step
