// RUN: btc-opt --pipeline "btc-analyse"
// x -> h1 -> h2 -> out, with the groups declared in reverse: the step order follows the
// same-step projections, not the op order. Input and groups get btc.binary; a readout is not binary.

module attributes {btc.batch = 2 : i64, btc.chunk = 4 : i64} {
  "btc.input"() {binary = true, size = 2 : i64, sym_name = "x"} : () -> ()
  "btc.readout"() ({
  ^bb0(%r: f32, %y: f32):
    %0 = arith.addf %r, %y : f32
    "btc.yield"(%0) : (f32) -> ()
  }) {init = [0.0 : f32], size = 2 : i64, states = ["r"], sym_name = "out"} : () -> ()
  "btc.group"() ({
  ^bb0(%v: f32, %y: f32):
    %0 = arith.addf %v, %y : f32
    "btc.yield"(%0) : (f32) -> ()
  }, {
  ^bb0(%v: f32):
    %0 = "btc.spike"(%v) {slope = 4.0 : f64, surrogate = "sigmoid"} : (f32) -> f32
    "btc.yield"(%0) : (f32) -> ()
  }) {init = [0.0 : f32], model = "lif", size = 2 : i64, states = ["v"], sym_name = "h2"} : () -> ()
  "btc.group"() ({
  ^bb0(%v: f32, %y: f32):
    %0 = arith.addf %v, %y : f32
    "btc.yield"(%0) : (f32) -> ()
  }, {
  ^bb0(%v: f32):
    %0 = "btc.spike"(%v) {slope = 4.0 : f64, surrogate = "sigmoid"} : (f32) -> f32
    "btc.yield"(%0) : (f32) -> ()
  }) {init = [0.0 : f32], model = "lif", size = 2 : i64, states = ["v"], sym_name = "h1"} : () -> ()
  "btc.projection"() {bias = false, post = @out, pre = @h2, recurrent = false, sym_name = "h2_to_out"} : () -> ()
  "btc.projection"() {bias = false, post = @h2, pre = @h1, recurrent = false, sym_name = "h1_to_h2"} : () -> ()
  "btc.projection"() {bias = false, post = @h1, pre = @x, recurrent = false, sym_name = "x_to_h1"} : () -> ()
  "btc.loss"() {kind = "cross_entropy", readout = @out} : () -> ()
}

// CHECK: module attributes {{{.*}}btc.order = ["h1", "h2", "out"]{{.*}}} {
// CHECK-NEXT: "btc.input"() {{{.*}}btc.binary = true{{.*}}sym_name = "x"}
// CHECK: }) {{{.*}}btc.binary = false{{.*}}sym_name = "out"}
// CHECK: }) {{{.*}}btc.binary = true{{.*}}sym_name = "h2"}
// CHECK: }) {{{.*}}btc.binary = true{{.*}}sym_name = "h1"}
// CHECK-NEXT: "btc.projection"() {bias = false, post = @out, pre = @h2, recurrent = false, sym_name = "h2_to_out"}
