// The optimizer update rules, one element at a time, written once for both backends (EMBER_HD): the
// CPU's per-ISA loops (cpu/simd/kernels.cpp) and the CUDA multi-tensor kernel call the same
// update(). The formulas are PyTorch's, so a model trained with either takes the same steps. Every
// step-dependent scalar (bias corrections, decay factors) is folded into the struct once per step
// on the host, so the per-element work is a handful of FMAs and one sqrt: the update is bound by
// memory traffic, not arithmetic.
#pragma once
#include <cmath>
#include <cstdint>
#include "core/hd.h"

namespace ember {

// Adam / AdamW.  g' = g + wd*p (Adam's L2 form, wd_l2), p *= decay (AdamW's decoupled form),
// m = b1*m + (1-b1)*g', v = b2*v + (1-b2)*g'^2, p -= step_size * m / (sqrt(v) * inv_sqrt_bc2 + eps)
// with step_size = lr / (1 - b1^t) and inv_sqrt_bc2 = 1 / sqrt(1 - b2^t).
struct AdamRule {
  double beta1, beta2, step_size, inv_sqrt_bc2, eps, wd_l2, decay;
  template <typename T> EMBER_HD void update(T& p, T g, T& m, T& v) const {
    g += T(wd_l2) * p;
    p *= T(decay);
    m = T(beta1) * m + (T(1) - T(beta1)) * g;
    v = T(beta2) * v + (T(1) - T(beta2)) * g * g;
    p -= T(step_size) * m / (std::sqrt(v) * T(inv_sqrt_bc2) + T(eps));
  }
};

// SGD with momentum (PyTorch's: the first step sets buf = g', later ones buf = mu*buf + (1-damp)*g').
// momentum == 0 never touches buf. Hyperparameters are doubles, rounded to T once per use (hoisted).
struct SgdRule {
  double lr, momentum, dampening, weight_decay;
  bool nesterov, first_step;
  template <typename T> EMBER_HD void update(T& p, T g, T& buf) const {
    g += T(weight_decay) * p;
    if (momentum != 0.0) {
      buf = first_step ? g : T(momentum) * buf + (T(1) - T(dampening)) * g;
      g = nesterov ? g + T(momentum) * buf : buf;
    }
    p -= T(lr) * g;
  }
};

// RMSprop: sq = a*sq + (1-a)*g'^2; centered also tracks avg = a*avg + (1-a)*g' and divides by
// sqrt(sq - avg^2) + eps; with momentum, buf = mu*buf + g'/denom and p -= lr*buf.
struct RmspropRule {
  double lr, alpha, eps, weight_decay, momentum;
  bool centered;
  template <typename T> EMBER_HD void update(T& p, T g, T& sq, T& buf, T& avg) const {
    g += T(weight_decay) * p;
    sq = T(alpha) * sq + (T(1) - T(alpha)) * g * g;
    T var = sq;
    if (centered) {
      avg = T(alpha) * avg + (T(1) - T(alpha)) * g;
      var -= avg * avg;
    }
    T step = g / (std::sqrt(var) + T(eps));
    if (momentum != 0.0) {
      buf = T(momentum) * buf + step;
      step = buf;
    }
    p -= T(lr) * step;
  }
};

}  // namespace ember
