// RUN: btc-opt --pipeline "btc-check-lowered"
// A btc.schedule left behind (e.g. btc-lower-to-linalg missing from the pipeline) is refused,
// naming every btc op found, nested ones included.
// EXPECT-ERROR: btc-check-lowered: 3 btc op\(s\) were not lowered: \['btc\.learning_signal', 'btc\.schedule', 'btc\.yield'\]; a pass is missing from the pipeline

module {
  func.func @f() {
    return
  }
  "btc.schedule"() ({
    "btc.learning_signal"() {group = @out} : () -> ()
    "btc.yield"() : () -> ()
  }) {algorithm = "pp-prop"} : () -> ()
}
