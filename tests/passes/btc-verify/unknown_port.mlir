// RUN: btc-opt --pipeline "btc-verify"
// A projection into a port the target group does not have; the error lists the ports.
// EXPECT-ERROR: btc-verify: btc\.projection x_to_out: @out has no port 'exc'; ports: \['y'\]

module attributes {btc.batch = 2 : i64, btc.chunk = 4 : i64} {
  "btc.input"() {binary = true, size = 2 : i64, sym_name = "x"} : () -> ()
  "btc.readout"() ({
  ^bb0(%r: f32, %y: f32):
    %0 = arith.addf %r, %y : f32
    "btc.yield"(%0) : (f32) -> ()
  }) {init = [0.0 : f32], size = 2 : i64, states = ["r"], sym_name = "out"} : () -> ()
  "btc.projection"() {bias = false, port = "exc", post = @out, pre = @x, recurrent = false, sym_name = "x_to_out"} : () -> ()
  "btc.loss"() {kind = "mse", readout = @out} : () -> ()
}
