// RUN: btc-opt --pipeline "btc-analyse"
// a <-> b: a reads b one step late (recurrent = true, lag 1), so only a -> b orders this step:
// the order is a, b, out although b is declared first. A non-binary input stays non-binary.

module attributes {btc.batch = 2 : i64, btc.chunk = 4 : i64} {
  "btc.input"() {binary = false, size = 3 : i64, sym_name = "x"} : () -> ()
  "btc.group"() ({
  ^bb0(%v: f32, %y: f32):
    %0 = arith.addf %v, %y : f32
    "btc.yield"(%0) : (f32) -> ()
  }, {
  ^bb0(%v: f32):
    %0 = "btc.spike"(%v) {slope = 4.0 : f64, surrogate = "sigmoid"} : (f32) -> f32
    "btc.yield"(%0) : (f32) -> ()
  }) {init = [0.0 : f32], model = "lif", size = 2 : i64, states = ["v"], sym_name = "b"} : () -> ()
  "btc.group"() ({
  ^bb0(%v: f32, %y: f32):
    %0 = arith.addf %v, %y : f32
    "btc.yield"(%0) : (f32) -> ()
  }, {
  ^bb0(%v: f32):
    %0 = "btc.spike"(%v) {slope = 4.0 : f64, surrogate = "sigmoid"} : (f32) -> f32
    "btc.yield"(%0) : (f32) -> ()
  }) {init = [0.0 : f32], model = "lif", size = 2 : i64, states = ["v"], sym_name = "a"} : () -> ()
  "btc.readout"() ({
  ^bb0(%r: f32, %y: f32):
    %0 = arith.addf %r, %y : f32
    "btc.yield"(%0) : (f32) -> ()
  }) {init = [0.0 : f32], size = 2 : i64, states = ["r"], sym_name = "out"} : () -> ()
  "btc.projection"() {bias = false, post = @a, pre = @x, recurrent = false, sym_name = "x_to_a"} : () -> ()
  "btc.projection"() {bias = false, post = @b, pre = @a, recurrent = false, sym_name = "a_to_b"} : () -> ()
  "btc.projection"() {bias = false, post = @a, pre = @b, recurrent = true, sym_name = "b_to_a"} : () -> ()
  "btc.projection"() {bias = false, post = @out, pre = @b, recurrent = false, sym_name = "b_to_out"} : () -> ()
  "btc.loss"() {kind = "mse", readout = @out} : () -> ()
}

// CHECK: btc.order = ["a", "b", "out"]
// CHECK: "btc.input"() {binary = false, btc.binary = false{{.*}}sym_name = "x"}
// CHECK-NOT: btc.order
