// RUN: btc-opt --pipeline "btc-check-lowered"
// A module of upstream ops only (util globals, func, linalg, scf) passes unchanged.

module @btc_model {
  util.global private mutable @p0 = dense<0.0> : tensor<3x2xf32>
  func.func @step(%x: tensor<2x3xf32>) -> tensor<2x2xf32> {
    %w = util.global.load @p0 : tensor<3x2xf32>
    %zero = arith.constant 0.0 : f32
    %e = tensor.empty() : tensor<2x2xf32>
    %f = linalg.fill ins(%zero : f32) outs(%e : tensor<2x2xf32>) -> tensor<2x2xf32>
    %y = linalg.matmul ins(%x, %w : tensor<2x3xf32>, tensor<3x2xf32>) outs(%f : tensor<2x2xf32>) -> tensor<2x2xf32>
    %c0 = arith.constant 0 : index
    %c1 = arith.constant 1 : index
    %c4 = arith.constant 4 : index
    %r = scf.for %i = %c0 to %c4 step %c1 iter_args(%acc = %y) -> (tensor<2x2xf32>) {
      scf.yield %acc : tensor<2x2xf32>
    }
    return %r : tensor<2x2xf32>
  }
}

// CHECK: module @btc_model {
// CHECK-NEXT: util.global private mutable @p0 = dense<0.000000e+00> : tensor<3x2xf32>
// CHECK-NEXT: func.func @step(%arg0: tensor<2x3xf32>) -> tensor<2x2xf32> {
// CHECK: linalg.matmul ins(%arg0, %{{.*}} : tensor<2x3xf32>, tensor<3x2xf32>)
// CHECK: scf.for
// CHECK: return
