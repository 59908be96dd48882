// RUN: btc-opt --pipeline "btc-lower-to-linalg{optimizer=sgd},btc-check-lowered"
// A recurrent LIF group (its spikes read one step late, through a history buffer) and an MSE loss,
// after btc-rewrite-online (generated once from the frontend, then kept as it is).
module attributes {btc.batch = 2 : i64, btc.chunk = 4 : i64, btc.order = ["h", "out"]} {
  "btc.input"() {binary = true, btc.binary = true, size = 3 : i64, sym_name = "x"} : () -> ()
  "btc.group"() ({
  ^bb0(%arg0: f32, %arg1: f32):
    %cst = arith.constant 1.000000e+00 : f32
    %0 = arith.subf %arg0, %cst : f32
    %cst_0 = arith.constant 1.000000e+00 : f32
    %1 = arith.divf %0, %cst_0 : f32
    %2 = "btc.spike"(%1) {slope = 4.000000e+00 : f64, surrogate = "sigmoid"} : (f32) -> f32
    %3 = "btc.stop_gradient"(%2) : (f32) -> f32
    %cst_1 = arith.constant 1.000000e+00 : f32
    %4 = arith.mulf %3, %cst_1 : f32
    %5 = arith.subf %arg0, %4 : f32
    %cst_2 = arith.constant 0.000000e+00 : f32
    %6 = arith.subf %5, %cst_2 : f32
    %cst_3 = arith.constant 0.818730771 : f32
    %7 = arith.mulf %6, %cst_3 : f32
    %cst_4 = arith.constant 0.000000e+00 : f32
    %8 = arith.addf %cst_4, %7 : f32
    %cst_5 = arith.constant 0.181269243 : f32
    %9 = arith.mulf %cst_5, %arg1 : f32
    %10 = arith.addf %8, %9 : f32
    "btc.yield"(%10) : (f32) -> ()
  }, {
  ^bb0(%arg0: f32):
    %cst = arith.constant 1.000000e+00 : f32
    %0 = arith.subf %arg0, %cst : f32
    %cst_0 = arith.constant 1.000000e+00 : f32
    %1 = arith.divf %0, %cst_0 : f32
    %2 = "btc.spike"(%1) {slope = 4.000000e+00 : f64, surrogate = "sigmoid"} : (f32) -> f32
    "btc.yield"(%2) : (f32) -> ()
  }) {btc.binary = true, init = [0.000000e+00 : f32], model = "lif", params = [], ports = ["y"], size = 2 : i64, states = ["v"], sym_name = "h"} : () -> ()
  "btc.readout"() ({
  ^bb0(%arg0: f32, %arg1: f32):
    %cst = arith.constant 0.778800785 : f32
    %0 = arith.mulf %arg0, %cst : f32
    %1 = arith.addf %0, %arg1 : f32
    "btc.yield"(%1) : (f32) -> ()
  }) {btc.binary = false, init = [0.000000e+00 : f32], size = 2 : i64, states = ["r"], sym_name = "out"} : () -> ()
  "btc.projection"() {bias = false, delay = 0 : i64, port = "y", post = @h, pre = @x, recurrent = false, sign = 0 : i64, sym_name = "x_to_h"} : () -> ()
  "btc.projection"() {bias = false, delay = 0 : i64, port = "y", post = @h, pre = @h, recurrent = true, sign = 0 : i64, sym_name = "h_to_h"} : () -> ()
  "btc.projection"() {bias = true, delay = 0 : i64, port = "y", post = @out, pre = @h, recurrent = false, sign = 0 : i64, sym_name = "h_to_out"} : () -> ()
  "btc.loss"() {kind = "mse", readout = @out} : () -> ()
  "btc.derivatives"() ({
  ^bb0(%arg0: f32, %arg1: f32):
    %cst = arith.constant 1.000000e+00 : f32
    %cst_0 = arith.constant 1.000000e+00 : f32
    %cst_1 = arith.constant 1.000000e+00 : f32
    %0 = arith.subf %arg0, %cst_1 : f32
    %cst_2 = arith.constant 1.000000e+00 : f32
    %1 = arith.divf %0, %cst_2 : f32
    %2 = arith.divf %cst, %cst_2 : f32
    %3 = "btc.spike"(%1) {slope = 4.000000e+00 : f64, surrogate = "sigmoid"} : (f32) -> f32
    %cst_3 = arith.constant 1.000000e+00 : f32
    %cst_4 = arith.constant 1.000000e+00 : f32
    %cst_5 = arith.constant -4.000000e+00 : f32
    %4 = arith.mulf %cst_5, %1 : f32
    %5 = math.exp %4 : f32
    %6 = arith.addf %cst_4, %5 : f32
    %7 = arith.divf %cst_3, %6 : f32
    %cst_6 = arith.constant 4.000000e+00 : f32
    %cst_7 = arith.constant 1.000000e+00 : f32
    %8 = arith.subf %cst_7, %7 : f32
    %9 = arith.mulf %7, %8 : f32
    %10 = arith.mulf %cst_6, %9 : f32
    %11 = arith.mulf %10, %2 : f32
    %12 = "btc.stop_gradient"(%3) : (f32) -> f32
    %cst_8 = arith.constant 1.000000e+00 : f32
    %13 = arith.mulf %12, %cst_8 : f32
    %14 = arith.subf %arg0, %13 : f32
    %cst_9 = arith.constant 0.000000e+00 : f32
    %15 = arith.subf %14, %cst_9 : f32
    %cst_10 = arith.constant 0.818730771 : f32
    %16 = arith.mulf %15, %cst_10 : f32
    %17 = arith.mulf %cst, %cst_10 : f32
    %cst_11 = arith.constant 0.000000e+00 : f32
    %18 = arith.addf %cst_11, %16 : f32
    %cst_12 = arith.constant 0.181269243 : f32
    %19 = arith.mulf %cst_12, %arg1 : f32
    %20 = arith.mulf %cst_12, %cst_0 : f32
    %21 = arith.addf %18, %19 : f32
    "btc.yield"(%21, %17, %20) : (f32, f32, f32) -> ()
  }, {
  ^bb0(%arg0: f32):
    %cst = arith.constant 1.000000e+00 : f32
    %cst_0 = arith.constant 1.000000e+00 : f32
    %0 = arith.subf %arg0, %cst_0 : f32
    %cst_1 = arith.constant 1.000000e+00 : f32
    %1 = arith.divf %0, %cst_1 : f32
    %2 = arith.divf %cst, %cst_1 : f32
    %3 = "btc.spike"(%1) {slope = 4.000000e+00 : f64, surrogate = "sigmoid"} : (f32) -> f32
    %cst_2 = arith.constant 1.000000e+00 : f32
    %cst_3 = arith.constant 1.000000e+00 : f32
    %cst_4 = arith.constant -4.000000e+00 : f32
    %4 = arith.mulf %cst_4, %1 : f32
    %5 = math.exp %4 : f32
    %6 = arith.addf %cst_3, %5 : f32
    %7 = arith.divf %cst_2, %6 : f32
    %cst_5 = arith.constant 4.000000e+00 : f32
    %cst_6 = arith.constant 1.000000e+00 : f32
    %8 = arith.subf %cst_6, %7 : f32
    %9 = arith.mulf %7, %8 : f32
    %10 = arith.mulf %cst_5, %9 : f32
    %11 = arith.mulf %10, %2 : f32
    "btc.yield"(%3, %11) : (f32, f32) -> ()
  }) {group = @h, num_states = 1 : i64} : () -> ()
  "btc.derivatives"() ({
  ^bb0(%arg0: f32, %arg1: f32):
    %cst = arith.constant 1.000000e+00 : f32
    %cst_0 = arith.constant 1.000000e+00 : f32
    %cst_1 = arith.constant 0.778800785 : f32
    %0 = arith.mulf %arg0, %cst_1 : f32
    %1 = arith.mulf %cst, %cst_1 : f32
    %2 = arith.addf %0, %arg1 : f32
    "btc.yield"(%2, %1, %cst_0) : (f32, f32, f32) -> ()
  }, {
  }) {group = @out, num_states = 1 : i64} : () -> ()
  "btc.trace"() {decay = 9.000000e-01 : f64, delay = 0 : i64, kind = "pre", num_states = 1 : i64, of = @x, size = 3 : i64, sym_name = "eps_x_x_0"} : () -> ()
  "btc.trace"() {decay = 9.000000e-01 : f64, delay = 1 : i64, kind = "pre", num_states = 1 : i64, of = @h, size = 2 : i64, sym_name = "eps_x_h_1"} : () -> ()
  "btc.trace"() {decay = 9.000000e-01 : f64, delay = 0 : i64, kind = "pre", num_states = 1 : i64, of = @h, size = 2 : i64, sym_name = "eps_x_h_0"} : () -> ()
  "btc.trace"() {correction = true, decay = 9.000000e-01 : f64, delay = 0 : i64, kind = "post", num_states = 1 : i64, of = @h, port = "y", size = 2 : i64, sym_name = "eps_f_h"} : () -> ()
  "btc.trace"() {correction = true, decay = 9.000000e-01 : f64, delay = 0 : i64, kind = "post", num_states = 1 : i64, of = @out, port = "y", size = 2 : i64, sym_name = "eps_f_out"} : () -> ()
  "btc.trace"() {decay = 1.000000e+00 : f64, delay = 0 : i64, kind = "bias", num_states = 1 : i64, of = @out, port = "y", size = 2 : i64, sym_name = "e_b_out"} : () -> ()
  "btc.schedule"() ({
    "btc.learning_signal"() {group = @out} : () -> ()
    "btc.learning_signal"() {group = @h} : () -> ()
    "btc.update_pre_trace"() {trace = @eps_x_x_0} : () -> ()
    "btc.update_pre_trace"() {trace = @eps_x_h_1} : () -> ()
    "btc.update_pre_trace"() {trace = @eps_x_h_0} : () -> ()
    "btc.update_post_trace"() {group = @h, trace = @eps_f_h} : () -> ()
    "btc.accumulate_grad"() {post_trace = @eps_f_h, pre_trace = @eps_x_x_0, projection = @x_to_h} : () -> ()
    "btc.accumulate_grad"() {post_trace = @eps_f_h, pre_trace = @eps_x_h_1, projection = @h_to_h} : () -> ()
    "btc.update_post_trace"() {group = @out, trace = @eps_f_out} : () -> ()
    "btc.update_bias_trace"() {group = @out, trace = @e_b_out} : () -> ()
    "btc.accumulate_grad"() {post_trace = @eps_f_out, pre_trace = @eps_x_h_0, projection = @h_to_out} : () -> ()
    "btc.accumulate_bias_grad"() {projection = @h_to_out, trace = @e_b_out} : () -> ()
    "btc.yield"() : () -> ()
  }) {algorithm = "pp-prop"} : () -> ()
}
// CHECK-DAG: util.global private mutable @hist_h_0 = {{.*}} : tensor<2x2xf32>
// CHECK-DAG: util.global private mutable @tr_eps_x_h_1_0 = {{.*}} : tensor<2x2xf32>
// the MSE gradient 2 (r - target) w, inside train_chunk's loop
// CHECK: func.func @train_chunk(%arg0: tensor<4x2x3xf32>, %arg1: tensor<4x2x2xf32>, %arg2: tensor<4xf32>)
// CHECK: [[D:%[0-9]+]] = arith.subf %in, %in_{{[0-9]+}} : f32
// CHECK-NEXT: [[G2:%[0-9]+]] = arith.mulf [[D]], %{{[0-9]+}} : f32
// CHECK-NEXT: arith.addf [[G2]], [[G2]] : f32
// record_step: the recurrent projection reads last step's spikes, and this step's spikes become the history
// CHECK: func.func @record_step(%arg0: tensor<2x3xf32>)
// CHECK: [[H:%hist_h_0]] = util.global.load @hist_h_0 : tensor<2x2xf32>
// CHECK: linalg.matmul ins([[H]], %{{[A-Za-z0-9_]+}} : tensor<2x2xf32>, tensor<2x2xf32>)
// CHECK-NOT: util.global.store [[H]], @hist_h_0
// CHECK: util.global.store %{{[0-9]+}}#{{[0-9]+}}, @hist_h_0 : tensor<2x2xf32>
// CHECK: return
