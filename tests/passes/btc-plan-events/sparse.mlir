// RUN: btc-opt --pipeline "btc-analyse,btc-plan-events{mode=on}"
// A sparse projection (pre_index/post_index) computes over its pairs: under mode=on its binary input's
// spikes push them ("sparse-event"); with no trace plan its weight gradient stays "sparse"; the dense
// projections beside it are planned as before.
// CHECK: "btc.projection"() {bias = false, post = @h, post_index = dense<[0, 2, 1]> : tensor<3xi32>, pre = @x, pre_index = dense<[0, 0, 3]> : tensor<3xi32>, propagation = "sparse-event", recurrent = false, sym_name = "x_to_h", weight_gradient = "sparse"}
// CHECK: "btc.projection"() {bias = false, post = @out, pre = @h, propagation = "event", recurrent = false, sym_name = "h_to_out", weight_gradient = "dense"}

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
