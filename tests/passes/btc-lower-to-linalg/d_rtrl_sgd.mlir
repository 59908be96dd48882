// RUN: btc-opt --pipeline "btc-lower-to-linalg{optimizer=sgd unroll=1},btc-check-lowered"
// The input is the post-btc-rewrite-online module of x[3] -> h (2 LIF neurons) -> out[4], h_to_out
// biased, B = 2, K = 4 (generated once by btc-analyse..btc-rewrite-online from a hand-written model,
// pre/post decays 0.5/0.25). Checked: functions, globals and key ops, not module attributes.
// btc-check-lowered runs after, so no btc op may be left.
// D-RTRL with SGD, one step per loop iteration: per-weight traces [B, I, O] per state, no Adam
// moments; the trace update reads x_t and the old trace.

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
  "btc.trace"() {decay = 1.000000e+00 : f64, delay = 0 : i64, kind = "dense", num_states = 1 : i64, of = @x_to_h, rows = 3 : i64, size = 2 : i64, sym_name = "e_W_x_to_h"} : () -> ()
  "btc.trace"() {decay = 1.000000e+00 : f64, delay = 0 : i64, kind = "dense", num_states = 1 : i64, of = @h_to_out, rows = 2 : i64, size = 4 : i64, sym_name = "e_W_h_to_out"} : () -> ()
  "btc.trace"() {decay = 1.000000e+00 : f64, delay = 0 : i64, kind = "bias", num_states = 1 : i64, of = @out, port = "y", size = 4 : i64, sym_name = "e_b_out"} : () -> ()
  "btc.schedule"() ({
    "btc.learning_signal"() {group = @out} : () -> ()
    "btc.learning_signal"() {group = @h} : () -> ()
    "btc.update_dense_trace"() {projection = @x_to_h, trace = @e_W_x_to_h} : () -> ()
    "btc.accumulate_dense_grad"() {projection = @x_to_h, trace = @e_W_x_to_h} : () -> ()
    "btc.update_bias_trace"() {group = @out, trace = @e_b_out} : () -> ()
    "btc.update_dense_trace"() {projection = @h_to_out, trace = @e_W_h_to_out} : () -> ()
    "btc.accumulate_dense_grad"() {projection = @h_to_out, trace = @e_W_h_to_out} : () -> ()
    "btc.accumulate_bias_grad"() {projection = @h_to_out, trace = @e_b_out} : () -> ()
    "btc.yield"() : () -> ()
  }) {algorithm = "d-rtrl"} : () -> ()
}

// CHECK-DAG: util.global private mutable @tr_e_W_x_to_h_0 = {{.*}} : tensor<2x3x2xf32>
// CHECK-DAG: util.global private mutable @tr_e_W_h_to_out_0 = {{.*}} : tensor<2x2x4xf32>
// CHECK-DAG: util.global private mutable @tr_e_b_out_0 = {{.*}} : tensor<2x4xf32>
// CHECK: func.func @train_chunk(%arg0: tensor<4x2x3xf32>, %arg1: tensor<4x2xi32>, %arg2: tensor<4xf32>) -> (tensor<f32>, tensor<2x4xf32>) {
// CHECK: [[E:%[A-Za-z0-9_]+]] = util.global.load @tr_e_W_x_to_h_0 : tensor<2x3x2xf32>
// the input's drive x @ W for all 4 steps at once, before the loop
// CHECK: linalg.matmul ins(%collapsed{{[_0-9]*}}, %p0 : tensor<8x3xf32>, tensor<3x2xf32>)
// CHECK: [[LOOP:%[0-9]+]]:{{[0-9]+}} = scf.for %arg3 = %c0 to %c4 step %c1 iter_args({{.*}}[[EV:%arg[0-9]+]] = [[E]]
// CHECK: [[XT:%extracted_slice[_0-9]*]] = tensor.extract_slice %arg0[%arg3, 0, 0]
// CHECK: linalg.generic {{.*}} ins(%{{.*}}, [[XT]], [[EV]] : {{.*}}tensor<2x3xf32>, tensor<2x3x2xf32>) outs(%{{.*}} : tensor<2x3x2xf32>)
// CHECK: util.global.store [[LOOP]]#{{[0-9]+}}, @tr_e_W_x_to_h_0 : tensor<2x3x2xf32>
// CHECK-NOT: tr_eps_x
// CHECK-NOT: @m0
// CHECK-NOT: @u0
