// RUN: btc-opt --pipeline "btc-verify,btc-analyse,btc-derive-jacobians,btc-plan-traces,btc-plan-events,btc-rewrite-online,btc-lower-to-linalg,btc-check-lowered"
// A sparse projection lowers to its weight vector (one entry per pair), immutable i32 index tables
// (pull per postsynaptic neuron, padded to the largest fan-in: one bucket when that wastes little),
// and products that read the signal through them.
// The weight vector starts from the parameter archive, like every mutable global.
// CHECK: util.global private mutable @p0 = #flow.parameter.named<"model"::"p0"> : tensor<3xf32>
// Pairs (pre, post) k: (0, 0), (0, 2), (3, 1). Each post has one incoming pair (no padding).
// The weight table in_k0 comes first.
// CHECK: util.global private @ix_x_to_h_in_k0 = dense<{{\[\[0\], \[2\], \[1\]\]}}> : tensor<3x1xi32>
// CHECK: util.global private @ix_x_to_h_in_col0 = dense<{{\[\[0\], \[3\], \[0\]\]}}> : tensor<3x1xi32>
// Tables are declared when a product reads them: nothing pulls a signal back through an input projection.
// CHECK-NOT: @ix_x_to_h_out_
// CHECK: func.func @train_chunk
// CHECK: util.global.load @ix_x_to_h_in_col0 : tensor<3x1xi32>
// CHECK: tensor.extract %p0

module attributes {btc.batch = 4 : i64, btc.chunk = 10 : i64} {
  "btc.input"() {binary = true, size = 4 : i64, sym_name = "x"} : () -> ()
  "btc.group"() ({
  ^bb0(%v: f32, %y: f32):
    %0 = arith.addf %v, %y : f32
    "btc.yield"(%0) : (f32) -> ()
  }, {
  ^bb0(%v: f32):
    %0 = "btc.spike"(%v) {slope = 4.0 : f64, surrogate = "sigmoid"} : (f32) -> f32
    "btc.yield"(%0) : (f32) -> ()
  }) {init = [0.0 : f32], model = "lif", size = 3 : i64, states = ["v"], sym_name = "h"} : () -> ()
  "btc.readout"() ({
  ^bb0(%r: f32, %y: f32):
    %0 = arith.addf %r, %y : f32
    "btc.yield"(%0) : (f32) -> ()
  }) {init = [0.0 : f32], size = 2 : i64, states = ["r"], sym_name = "out"} : () -> ()
  "btc.projection"() {bias = false, post = @h, pre = @x, recurrent = false, sym_name = "x_to_h", pre_index = dense<[0, 0, 3]> : tensor<3xi32>, post_index = dense<[0, 2, 1]> : tensor<3xi32>} : () -> ()
  "btc.projection"() {bias = false, post = @out, pre = @h, recurrent = false, sym_name = "h_to_out"} : () -> ()
  "btc.loss"() {kind = "mse", readout = @out} : () -> ()
}
