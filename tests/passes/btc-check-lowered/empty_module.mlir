// RUN: btc-opt --pipeline "btc-check-lowered"
// Nothing to lower is fine; module attributes named btc.* are not ops and are allowed.

module attributes {btc.batch = 2 : i64} {
}

// CHECK: module attributes {btc.batch = 2 : i64} {
// CHECK-NEXT: }
