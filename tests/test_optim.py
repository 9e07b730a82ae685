import math

import numpy as np
import pytest

import fastbp
from fastbp import optim


def make_params(rng, dtype):
    return {
        "0.weight": rng.standard_normal((4, 3)).astype(dtype),
        "0.bias": rng.standard_normal(4).astype(dtype),
        "2.weight": rng.standard_normal((2, 3, 2, 2)).astype(dtype),
    }


def make_grads(rng, params):
    return {k: rng.standard_normal(v.shape).astype(v.dtype) for k, v in params.items()}


def tol(dtype):
    return dict(rtol=1e-6, atol=1e-7) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-15)


def test_sgd_step_matches_reference_and_does_not_decay_biases(rng, dtype):
    params = make_params(rng, dtype)
    before = {k: v.copy() for k, v in params.items()}
    grads = make_grads(rng, params)
    opt = optim.SGD(params, lr=0.1, weight_decay=0.01)
    opt.step(grads)
    for name in params:
        decay = 0.0 if name.endswith("bias") else 0.01
        expected = before[name] - 0.1 * (grads[name] + decay * before[name])
        np.testing.assert_allclose(params[name], expected, **tol(dtype))
        assert params[name].dtype == dtype


def test_weight_decay_gradient_is_that_of_half_lambda_squared_norm():
    # With a zero loss gradient, one step moves W by -lr * d/dW (lambda/2 ||W||^2) = -lr * lambda * W.
    w = np.array([[1.0, -2.0], [3.0, 0.5]])
    b = np.array([1.0, -1.0])
    opt = optim.SGD({"0.weight": w, "0.bias": b}, lr=0.5, weight_decay=0.2)
    opt.step({"0.weight": np.zeros_like(w), "0.bias": np.zeros_like(b)})
    np.testing.assert_allclose(w, [[0.9, -1.8], [2.7, 0.45]], rtol=1e-15)
    np.testing.assert_array_equal(b, [1.0, -1.0])


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum_matches_reference(rng, dtype, nesterov):
    params = make_params(rng, dtype)
    ref = {k: v.astype(np.float64) for k, v in params.items()}
    velocity = {k: np.zeros_like(v) for k, v in ref.items()}
    opt = optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=1e-3, nesterov=nesterov)
    for _ in range(3):
        grads = make_grads(rng, params)
        opt.step(grads)
        for name in ref:
            g = grads[name] + (0.0 if name.endswith("bias") else 1e-3) * ref[name]
            velocity[name] = 0.9 * velocity[name] + g
            ref[name] -= 0.05 * (g + 0.9 * velocity[name] if nesterov else velocity[name])
    for name in ref:
        np.testing.assert_allclose(params[name], ref[name], **tol(dtype))
        np.testing.assert_allclose(opt.buffers["velocity"][name], velocity[name], **tol(dtype))


def test_adam_matches_reference(rng, dtype):
    params = make_params(rng, dtype)
    ref = {k: v.astype(np.float64) for k, v in params.items()}
    m = {k: np.zeros_like(v) for k, v in ref.items()}
    v = {k: np.zeros_like(a) for k, a in ref.items()}
    opt = optim.Adam(params, lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)
    for t in range(1, 4):
        grads = make_grads(rng, params)
        opt.step(grads)
        for name in ref:
            g = grads[name] + (0.0 if name.endswith("bias") else 0.1) * ref[name]
            m[name] = 0.8 * m[name] + 0.2 * g
            v[name] = 0.99 * v[name] + 0.01 * g * g
            m_hat = m[name] / (1 - 0.8**t)
            v_hat = v[name] / (1 - 0.99**t)
            ref[name] -= 0.01 * m_hat / (np.sqrt(v_hat) + 1e-6)
    for name in ref:
        np.testing.assert_allclose(params[name], ref[name], rtol=2e-5 if dtype == np.float32 else 1e-12,
                                   atol=1e-6 if dtype == np.float32 else 1e-14)
    assert opt.step_count == 3


def test_adam_first_step_moves_each_weight_by_about_lr():
    # Bias correction makes the first step lr * g / (|g| + eps) = lr * sign(g).
    w = np.array([3.0, -0.001, 50.0])
    optim.Adam({"w": w}, lr=0.1).step({"w": np.array([2.0, -5.0, -1e-3])})
    np.testing.assert_allclose(w, [2.9, 0.099, 50.1], rtol=1e-6)


def test_optimizer_built_from_a_model_reads_its_grads():
    model = fastbp.Sequential(fastbp.Linear(3, 2, seed=0, dtype=np.float64))
    before = model.params["0.weight"].copy()
    model.grads["0.weight"][...] = 1.0
    model.grads["0.bias"][...] = 2.0
    opt = optim.SGD(model, lr=0.5)
    opt.step()
    np.testing.assert_array_equal(model.params["0.weight"], before - 0.5)
    np.testing.assert_array_equal(model.params["0.bias"], [-1.0, -1.0])


def test_updates_are_identical_for_any_thread_count(rng):
    results = []
    for threads in (1, 2):
        fastbp.set_num_threads(threads)
        params = {"w": np.linspace(-1, 1, 10007, dtype=np.float32)}
        opt = optim.Adam(params, lr=0.01, weight_decay=0.1)
        grads = {"w": np.cos(np.arange(10007, dtype=np.float32))}
        for _ in range(3):
            opt.step(grads)
        results.append(params["w"].copy())
    fastbp.set_num_threads(fastbp.threads.numba.config.NUMBA_NUM_THREADS)
    np.testing.assert_array_equal(results[0], results[1])


def test_nan_gradient_reaches_the_parameter():
    w = np.ones(3, np.float32)
    optim.SGD({"w": w}, lr=0.1, momentum=0.5).step({"w": np.array([0, np.nan, 0], np.float32)})
    assert np.isnan(w[1]) and np.isfinite(w[[0, 2]]).all()


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(lr=0.0), ValueError, "lr"),
    (dict(lr=-1.0), ValueError, "lr"),
    (dict(lr=float("nan")), ValueError, "lr"),
    (dict(lr="0.1"), TypeError, "lr"),
    (dict(lr=0.1, momentum=1.0), ValueError, "momentum"),
    (dict(lr=0.1, momentum=-0.1), ValueError, "momentum"),
    (dict(lr=0.1, weight_decay=-1e-4), ValueError, "weight_decay"),
    (dict(lr=0.1, nesterov=True), ValueError, "nesterov"),
])
def test_sgd_rejects_bad_hyper_parameters(kwargs, error, match):
    with pytest.raises(error, match=match):
        optim.SGD({"w": np.zeros(2)}, **kwargs)


def test_adam_rejects_bad_hyper_parameters():
    with pytest.raises(ValueError, match="beta1"):
        optim.Adam({"w": np.zeros(2)}, betas=(1.0, 0.9))
    with pytest.raises(ValueError, match="betas"):
        optim.Adam({"w": np.zeros(2)}, betas=0.9)
    with pytest.raises(ValueError, match="eps"):
        optim.Adam({"w": np.zeros(2)}, eps=0.0)


def test_adam_eps_that_rounds_to_zero_in_the_parameters_dtype_is_refused():
    message = r"eps=1e-50 rounds to 0 in float32, the parameters' dtype, .*use an eps of at least 1.4e-45"
    with pytest.raises(ValueError, match=message):
        optim.Adam({"w": np.zeros(3, np.float32)}, eps=1e-50)
    with pytest.raises(ValueError, match=message):  # any float32 parameter among float64 ones
        optim.Adam({"a": np.zeros(3), "b": np.zeros(3, np.float32)}, eps=1e-50)
    w = np.zeros(3)  # representable in float64: the update is finite even for a zero gradient
    optim.Adam({"w": w}, eps=1e-50).step({"w": np.array([0.0, 1.0, -1.0])})
    assert np.isfinite(w).all()
    # set later, or restored from a state: refused before the update, not a ZeroDivisionError in it
    w32 = np.ones(3, np.float32)
    opt = optim.Adam({"w": w32})
    state = opt.state_dict()
    state["hyper"]["eps"] = 1e-50
    with pytest.raises(ValueError, match=message):
        optim.Adam({"w": np.ones(3, np.float32)}).load_state_dict(state)
    opt.eps = 1e-50
    with pytest.raises(ValueError, match=message):
        opt.step({"w": np.zeros(3, np.float32)})
    np.testing.assert_array_equal(w32, 1.0)


def test_adam_state_with_betas_out_of_range_is_refused():
    opt = optim.Adam({"w": np.zeros(2)})
    state = opt.state_dict()
    state["hyper"]["beta2"] = 1.0
    with pytest.raises(ValueError, match=r"beta2 must be a finite number in \[0.0, 1.0\)"):
        optim.Adam({"w": np.zeros(2)}).load_state_dict(state)


def test_bad_params_and_grads_are_rejected():
    with pytest.raises(ValueError, match="empty"):
        optim.SGD({}, lr=0.1)
    with pytest.raises(TypeError, match="mapping"):
        optim.SGD([np.zeros(2)], lr=0.1)
    with pytest.raises(TypeError, match="float32 or float64"):
        optim.SGD({"w": np.zeros(2, np.int64)}, lr=0.1)
    with pytest.raises(ValueError, match="contiguous"):
        optim.SGD({"w": np.zeros((4, 4))[:, ::2]}, lr=0.1)
    opt = optim.SGD({"w": np.zeros(2)}, lr=0.1)
    with pytest.raises(ValueError, match="needs grads"):
        opt.step()
    with pytest.raises(ValueError, match="no entry for parameter 'w'"):
        opt.step({"v": np.zeros(2)})
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        opt.step({"w": np.zeros(3)})
    with pytest.raises(ValueError, match="float64"):
        opt.step({"w": np.zeros(2, np.float32)})
    with pytest.raises(ValueError, match="lr"):
        opt.lr = -0.1
    opt.lr = 0.0  # a schedule may anneal down to zero


def test_state_dict_round_trip_continues_identically(rng):
    params_a = make_params(rng, np.float32)
    params_b = {k: v.copy() for k, v in params_a.items()}
    grads = [make_grads(rng, params_a) for _ in range(4)]
    a = optim.Adam(params_a, lr=0.01, weight_decay=0.01)
    for g in grads[:2]:
        a.step(g)
    b = optim.optimizer_from_state_dict({k: v for k, v in params_b.items()}, a.state_dict())
    for name in params_b:
        params_b[name][...] = params_a[name]
    for g in grads[2:]:
        a.step(g)
        b.step(g)
    for name in params_a:
        np.testing.assert_array_equal(params_a[name], params_b[name])
    assert b.hyper() == a.hyper()


def test_load_state_dict_rejects_mismatches():
    sgd = optim.SGD({"w": np.zeros(2)}, lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="SGD"):
        optim.Adam({"w": np.zeros(2)}).load_state_dict(sgd.state_dict())
    with pytest.raises(ValueError, match="covers parameters"):
        optim.SGD({"v": np.zeros(2)}, lr=0.1).load_state_dict(sgd.state_dict())
    with pytest.raises(ValueError, match="shape"):
        optim.SGD({"w": np.zeros(3)}, lr=0.1).load_state_dict(sgd.state_dict())
    with pytest.raises(ValueError, match="unknown optimiser"):
        optim.optimizer_from_state_dict({"w": np.zeros(2)}, {"type": "Nope"})


def test_multistep_schedule_of_the_notes():
    schedule = optim.MultiStep(0.1, milestones=[50])
    rates = [schedule(e) for e in range(100)]
    assert rates[:50] == [0.1] * 50
    np.testing.assert_allclose(rates[50:], 0.01, rtol=1e-15)
    two = optim.MultiStep(1.0, [2, 4], gamma=0.5)
    assert [two(e) for e in range(6)] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]


def test_step_and_cosine_schedules():
    step = optim.Step(0.2, step_size=3, gamma=0.5)
    assert [step(e) for e in range(7)] == [0.2, 0.2, 0.2, 0.1, 0.1, 0.1, 0.05]
    cosine = optim.Cosine(0.1, epochs=10, min_lr=0.001)
    assert cosine(0) == pytest.approx(0.1)
    assert cosine(5) == pytest.approx(0.001 + 0.099 / 2)
    assert cosine(10) == pytest.approx(0.001)
    assert cosine(25) == pytest.approx(0.001)
    rates = [cosine(e) for e in range(11)]
    assert all(a > b for a, b in zip(rates, rates[1:]))
    assert cosine(3) == pytest.approx(0.001 + 0.099 * (1 + math.cos(math.pi * 0.3)) / 2)


def test_schedule_config_round_trip_and_errors():
    for schedule in (optim.Constant(0.3), optim.MultiStep(0.1, [5, 8], 0.2), optim.Step(0.1, 2),
                     optim.Cosine(0.1, 7, 0.01)):
        assert optim.schedule_from_config(schedule.to_config()) == schedule
    with pytest.raises(ValueError, match="increasing"):
        optim.MultiStep(0.1, [5, 3])
    with pytest.raises(ValueError, match="epochs"):
        optim.Cosine(0.1, 0)
    with pytest.raises(ValueError, match="min_lr"):
        optim.Cosine(0.1, 5, min_lr=0.2)
    with pytest.raises(ValueError, match="epoch"):
        optim.Constant(0.1)(-1)
    with pytest.raises(ValueError, match="schedule config"):
        optim.schedule_from_config({"type": "Exponential"})


def test_a_restored_optimiser_keeps_the_decay_rule_it_was_built_with():
    params = {"W1": np.ones((2, 2), np.float32), "b1": np.ones(2, np.float32)}
    opt = optim.SGD(params, 0.1, weight_decay=0.5, decay={"W1"})
    restored = optim.optimizer_from_state_dict(
        {k: v.copy() for k, v in params.items()}, opt.state_dict())
    assert restored.decayed == opt.decayed == {"W1": True, "b1": False}
    with pytest.raises(ValueError, match="must list parameters of this optimiser"):
        restored.load_state_dict({**opt.state_dict(), "decayed": ["W9"]})
