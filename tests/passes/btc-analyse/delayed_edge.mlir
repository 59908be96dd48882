// RUN: btc-opt --pipeline "btc-analyse"
// A feed-forward projection with delay = 2 reads past spikes: it orders nothing this step, so
// a -> b (delay 2) plus b -> a (same step) is no cycle; b steps first.

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
  "btc.projection"() {bias = false, post = @b, pre = @x, recurrent = false, sym_name = "x_to_b"} : () -> ()
  "btc.projection"() {bias = false, delay = 2 : i64, post = @b, pre = @a, recurrent = false, sym_name = "a_to_b"} : () -> ()
  "btc.projection"() {bias = false, post = @a, pre = @b, recurrent = false, sym_name = "b_to_a"} : () -> ()
  "btc.projection"() {bias = false, post = @out, pre = @a, recurrent = false, sym_name = "a_to_out"} : () -> ()
  "btc.loss"() {kind = "mse", readout = @out} : () -> ()
}

// CHECK: btc.order = ["b", "a", "out"]
