// RUN: btc-opt --pipeline "btc-verify"
// An op missing a declared attribute is named with the attribute and its kind.
// EXPECT-ERROR: btc-verify: btc\.input x: missing attribute 'size' \(int\)

module attributes {btc.batch = 2 : i64, btc.chunk = 4 : i64} {
  "btc.input"() {binary = true, sym_name = "x"} : () -> ()
}
