// RUN: btc-opt --pipeline "btc-analyse,btc-derive-jacobians,btc-plan-traces,btc-plan-events{mode=auto activities={x=0.04}}"
// Under `auto` the cost model makes the 32x1024x1024 projection of binary spikes at 4 % activity
// event-driven (its propagation and its pp-prop weight gradient, regrouped over blocks of 20 of the
// 100 steps) and keeps the 1024x2 readout projection dense: its active lists would cost more than its
// matmul. An analog input (binary = false) is never event-driven; every signal gets its activity.

module attributes {btc.batch = 32 : i64, btc.chunk = 100 : i64} {
  "btc.input"() {binary = true, size = 1024 : i64, sym_name = "x"} : () -> ()
  "btc.input"() {binary = false, size = 1024 : i64, sym_name = "u"} : () -> ()
  "btc.group"() ({
  ^bb0(%v: f32, %y: f32):
    %0 = arith.addf %v, %y : f32
    "btc.yield"(%0) : (f32) -> ()
  }, {
  ^bb0(%v: f32):
    %0 = "btc.spike"(%v) {slope = 4.0 : f64, surrogate = "sigmoid"} : (f32) -> f32
    "btc.yield"(%0) : (f32) -> ()
  }) {init = [0.0 : f32], model = "lif", size = 1024 : i64, states = ["v"], sym_name = "h"} : () -> ()
  "btc.readout"() ({
  ^bb0(%r: f32, %y: f32):
    %0 = arith.addf %r, %y : f32
    "btc.yield"(%0) : (f32) -> ()
  }) {init = [0.0 : f32], size = 2 : i64, states = ["r"], sym_name = "out"} : () -> ()
  "btc.projection"() {bias = false, post = @h, pre = @x, recurrent = false, sym_name = "x_to_h"} : () -> ()
  "btc.projection"() {bias = false, post = @h, pre = @u, recurrent = false, sym_name = "u_to_h"} : () -> ()
  "btc.projection"() {bias = false, post = @out, pre = @h, recurrent = false, sym_name = "h_to_out"} : () -> ()
  "btc.loss"() {kind = "mse", readout = @out} : () -> ()
}

// CHECK: module attributes {{{.*}}btc.event_block = 20 : i64
// CHECK: "btc.input"() {{{.*}}btc.activity = 4.000000e-02 : f64{{.*}}sym_name = "x"}
// CHECK-NEXT: "btc.input"() {{{.*}}btc.activity = 5.000000e-02 : f64{{.*}}sym_name = "u"}
// CHECK: "btc.projection"() {{{.*}}propagation = "event"{{.*}}sym_name = "x_to_h", weight_gradient = "event"}
// CHECK-NEXT: "btc.projection"() {{{.*}}propagation = "dense"{{.*}}sym_name = "u_to_h", weight_gradient = "dense"}
// CHECK-NEXT: "btc.projection"() {{{.*}}propagation = "dense"{{.*}}sym_name = "h_to_out", weight_gradient = "dense"}
