// RUN: btc-opt --pipeline "btc-verify"
// The pairs of a sparse projection must be sorted by (pre, post), each once: the lowering relies on it.
// EXPECT-ERROR: btc.projection x_to_out: the pairs must be sorted by \(pre, post\), each once

module attributes {btc.batch = 4 : i64, btc.chunk = 10 : i64} {
  "btc.input"() {binary = true, size = 4 : i64, sym_name = "x"} : () -> ()
  "btc.readout"() ({
  ^bb0(%r: f32, %y: f32):
    %0 = arith.addf %r, %y : f32
    "btc.yield"(%0) : (f32) -> ()
  }) {init = [0.0 : f32], size = 2 : i64, states = ["r"], sym_name = "out"} : () -> ()
  "btc.projection"() {bias = false, post = @out, pre = @x, recurrent = false, sym_name = "x_to_out", pre_index = dense<[3, 0]> : tensor<2xi32>, post_index = dense<[1, 1]> : tensor<2xi32>} : () -> ()
  "btc.loss"() {kind = "mse", readout = @out} : () -> ()
}
