// RUN: btc-opt --pipeline "btc-analyse"
// a -> b and b -> a in the same step cannot be ordered; the error names the groups.
// EXPECT-ERROR: btc-analyse: feed-forward projections form a cycle among \['a', 'b', 'out'\]

module attributes {btc.batch = 2 : i64, btc.chunk = 4 : i64} {
  "btc.input"() {binary = true, size = 2 : i64, sym_name = "x"} : () -> ()
  "btc.group"() ({
  ^bb0(%v: f32, %y: f32):
    %0 = arith.addf %v, %y : f32
    "btc.yield"(%0) : (f32) -> ()
  }, {
  ^bb0(%v: f32):
    %0 = "btc.spike"(%v) {slope = 4.0 : f64, surrogate = "sigmoid"} : (f32) -> f32
    "btc.yield"(%0) : (f32) -> ()
  }) {init = [0.0 : f32], model = "lif", size = 2 : i64, states = ["v"], sym_name = "a"} : () -> ()
  "btc.group"() ({
  ^bb0(%v: f32, %y: f32):
    %0 = arith.addf %v, %y : f32
    "btc.yield"(%0) : (f32) -> ()
  }, {
  ^bb0(%v: f32):
    %0 = "btc.spike"(%v) {slope = 4.0 : f64, surrogate = "sigmoid"} : (f32) -> f32
    "btc.yield"(%0) : (f32) -> ()
  }) {init = [0.0 : f32], model = "lif", size = 2 : i64, states = ["v"], sym_name = "b"} : () -> ()
  "btc.readout"() ({
  ^bb0(%r: f32, %y: f32):
    %0 = arith.addf %r, %y : f32
    "btc.yield"(%0) : (f32) -> ()
  }) {init = [0.0 : f32], size = 2 : i64, states = ["r"], sym_name = "out"} : () -> ()
  "btc.projection"() {bias = false, post = @a, pre = @x, recurrent = false, sym_name = "x_to_a"} : () -> ()
  "btc.projection"() {bias = false, post = @b, pre = @a, recurrent = false, sym_name = "a_to_b"} : () -> ()
  "btc.projection"() {bias = false, post = @a, pre = @b, recurrent = false, sym_name = "b_to_a"} : () -> ()
  "btc.projection"() {bias = false, post = @out, pre = @b, recurrent = false, sym_name = "b_to_out"} : () -> ()
  "btc.loss"() {kind = "mse", readout = @out} : () -> ()
}
