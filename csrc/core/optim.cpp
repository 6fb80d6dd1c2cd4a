// Fused optimizer updates: the parameter/state lists checked against each other, then one backend
// call per list.
// Backends receive only checked, same-device operands (backend.h).
#include "core/ops.h"
#include "core/backend.h"

namespace ember {

// Every list matches params in length, shape, dtype and device (empty optional lists pass);
// params and states must be contiguous (they are updated through raw pointers). Returns the
// gradients, made contiguous where they were not.
static std::vector<Array> check_optim_lists(const char* op, const std::vector<Array>& params,
                                            const std::vector<Array>& grads,
                                            std::initializer_list<const std::vector<Array>*> states) {
  EMBER_CHECK(grads.size() == params.size(), op, "got ", params.size(), " params but ", grads.size(), " grads");
  for (const auto* s : states)
    EMBER_CHECK(s->empty() || s->size() == params.size(), op, "a state list has ", s->size(), " arrays for ",
                params.size(), " params");
  std::vector<Array> g(grads.size());
  for (size_t i = 0; i < params.size(); ++i) {
    const Array& p = params[i];
    EMBER_CHECK_T(TypeError, p.dtype() == DType::float32 || p.dtype() == DType::float64, op,
                  "params must be float32 or float64, got ", dtype_name(p.dtype()));
    EMBER_CHECK(p.is_contiguous(), op, "param ", i, " is not contiguous (shape ", shape_str(p.shape()), ")");
    auto same = [&](const Array& x, const char* what) {
      check_same_device(op, p, x);
      EMBER_CHECK(x.shape() == p.shape(), op, what, " ", i, " has shape ", shape_str(x.shape()), ", param has ",
                  shape_str(p.shape()));
      EMBER_CHECK_T(TypeError, x.dtype() == p.dtype(), op, what, " ", i, " is ", dtype_name(x.dtype()),
                    ", param is ", dtype_name(p.dtype()));
    };
    same(grads[i], "grad");
    g[i] = grads[i].contiguous();
    for (const auto* s : states)
      if (!s->empty()) {
        same((*s)[i], "state");
        EMBER_CHECK((*s)[i].is_contiguous(), op, "state ", i, " is not contiguous");
      }
    EMBER_CHECK(p.dtype() == params[0].dtype() && p.device() == params[0].device(), op,
                "all params of one step must share dtype and device (param ", i, ")");
  }
  return g;
}

void adam_step_(const std::vector<Array>& params, const std::vector<Array>& grads, const std::vector<Array>& exp_avg,
                const std::vector<Array>& exp_avg_sq, double lr, double beta1, double beta2, double eps,
                double weight_decay, bool decoupled_weight_decay, int64_t step) {
  EMBER_CHECK(exp_avg.size() == params.size() && exp_avg_sq.size() == params.size(), "adam_step",
              "needs exp_avg and exp_avg_sq for every param");
  EMBER_CHECK(step >= 1, "adam_step", "step counts from 1, got ", step);
  std::vector<Array> g = check_optim_lists("adam_step", params, grads, {&exp_avg, &exp_avg_sq});
  if (params.empty()) return;
  const double bc1 = 1 - std::pow(beta1, double(step)), bc2 = 1 - std::pow(beta2, double(step));
  AdamRule rule{beta1, beta2, lr / bc1, 1 / std::sqrt(bc2), eps,
                decoupled_weight_decay ? 0.0 : weight_decay, decoupled_weight_decay ? 1 - lr * weight_decay : 1.0};
  EMBER_ON_DEVICE(params[0].device(), adam_step, params, g, exp_avg, exp_avg_sq, rule);
}

void sgd_step_(const std::vector<Array>& params, const std::vector<Array>& grads, const std::vector<Array>& momentum_buf,
               double lr, double momentum, double dampening, double weight_decay, bool nesterov, bool first_step) {
  EMBER_CHECK(momentum == 0 || momentum_buf.size() == params.size(), "sgd_step", "momentum needs a buffer per param");
  std::vector<Array> g = check_optim_lists("sgd_step", params, grads, {&momentum_buf});
  if (params.empty()) return;
  SgdRule rule{lr, momentum, dampening, weight_decay, nesterov, first_step};
  EMBER_ON_DEVICE(params[0].device(), sgd_step, params, g, momentum == 0 ? std::vector<Array>{} : momentum_buf, rule);
}

void rmsprop_step_(const std::vector<Array>& params, const std::vector<Array>& grads,
                   const std::vector<Array>& square_avg, const std::vector<Array>& momentum_buf,
                   const std::vector<Array>& grad_avg, double lr, double alpha, double eps, double weight_decay,
                   double momentum, bool centered) {
  EMBER_CHECK(square_avg.size() == params.size() && (momentum == 0 || momentum_buf.size() == params.size()) &&
                  (!centered || grad_avg.size() == params.size()),
              "rmsprop_step", "needs square_avg per param, plus momentum_buf with momentum and grad_avg when centered");
  std::vector<Array> g = check_optim_lists("rmsprop_step", params, grads, {&square_avg, &momentum_buf, &grad_avg});
  if (params.empty()) return;
  RmspropRule rule{lr, alpha, eps, weight_decay, momentum, centered};
  EMBER_ON_DEVICE(params[0].device(), rmsprop_step, params, g, square_avg,
                  momentum == 0 ? std::vector<Array>{} : momentum_buf, centered ? grad_avg : std::vector<Array>{}, rule);
}

}  // namespace ember
