// RUN: btc-opt --pipeline "btc-verify"
// A valid 2-neuron LIF model passes unchanged (btc-verify only reads).

module attributes {btc.batch = 2 : i64, btc.chunk = 4 : i64} {
  "btc.input"() {binary = true, size = 2 : i64, sym_name = "x"} : () -> ()
  "btc.group"() ({
  ^bb0(%v: f32, %y: f32):
    %leak = arith.constant 0.9 : f32
    %0 = arith.mulf %v, %leak : f32
    %1 = arith.addf %0, %y : f32
    "btc.yield"(%1) : (f32) -> ()
  }, {
  ^bb0(%v: f32):
    %theta = arith.constant 1.0 : f32
    %0 = arith.subf %v, %theta : f32
    %1 = "btc.spike"(%0) {slope = 4.0 : f64, surrogate = "sigmoid"} : (f32) -> f32
    "btc.yield"(%1) : (f32) -> ()
  }) {init = [0.0 : f32], model = "lif", ports = ["y"], size = 2 : i64, states = ["v"], sym_name = "h"} : () -> ()
  "btc.readout"() ({
  ^bb0(%r: f32, %y: f32):
    %decay = arith.constant 0.8 : f32
    %0 = arith.mulf %r, %decay : f32
    %1 = arith.addf %0, %y : f32
    "btc.yield"(%1) : (f32) -> ()
  }) {init = [0.0 : f32], size = 2 : i64, states = ["r"], sym_name = "out"} : () -> ()
  "btc.projection"() {bias = false, post = @h, pre = @x, recurrent = false, sym_name = "x_to_h"} : () -> ()
  "btc.projection"() {bias = true, post = @out, pre = @h, recurrent = false, sym_name = "h_to_out"} : () -> ()
  "btc.loss"() {kind = "cross_entropy", readout = @out} : () -> ()
}

// CHECK: module attributes {btc.batch = 2 : i64, btc.chunk = 4 : i64} {
// CHECK-NEXT: "btc.input"() {binary = true, size = 2 : i64, sym_name = "x"}
// CHECK: "btc.spike"(%{{.*}}) {slope = 4.000000e+00 : f64, surrogate = "sigmoid"}
// CHECK: sym_name = "h"
// CHECK: sym_name = "out"
// CHECK: "btc.projection"() {{.*}}sym_name = "x_to_h"
// CHECK-NEXT: "btc.projection"() {{.*}}sym_name = "h_to_out"
// CHECK-NEXT: "btc.loss"() {kind = "cross_entropy", readout = @out}
// CHECK-NOT: btc.order
// CHECK-NOT: btc.derivatives
