// RUN: btc-opt --pipeline "btc-verify"
// Shared weights: every pair's tie indexes the n_weights entries of W.
// EXPECT-ERROR: tie must index W's n_weights = 2 entries

module attributes {btc.batch = 4 : i64, btc.chunk = 10 : i64} {
  "btc.input"() {binary = true, size = 4 : i64, sym_name = "x"} : () -> ()
  "btc.readout"() ({
  ^bb0(%r: f32, %y: f32):
    %0 = arith.addf %r, %y : f32
    "btc.yield"(%0) : (f32) -> ()
  }) {init = [0.0 : f32], size = 4 : i64, states = ["r"], sym_name = "out"} : () -> ()
  "btc.projection"() {bias = false, post = @out, pre = @x, recurrent = false, sym_name = "x_to_out", pre_index = dense<[0, 1, 3]> : tensor<3xi32>, post_index = dense<[0, 2, 3]> : tensor<3xi32>, tie = dense<[0, 2, 1]> : tensor<3xi32>, n_weights = 2 : i64} : () -> ()
  "btc.loss"() {kind = "mse", readout = @out} : () -> ()
}
