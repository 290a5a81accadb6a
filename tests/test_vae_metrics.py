"""VAE image metrics and the digit classifier: class histograms and entropy, improved precision/recall
(hand-computed cases and a scikit-learn/scipy reference), the Frechet distance (closed form, scipy's
sqrtm, Monte Carlo), the KDE against scipy.stats.gaussian_kde, and the classifier's architecture,
batching, rebuild from its state and accuracy on the 8x8 digits and (when the data is there) MNIST."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from scipy import linalg, stats

from conftest import real_data_dir
from modelcollapse.datasets import fetch
from modelcollapse.datasets.images import load_images
from modelcollapse.vae import classifier, metrics
from modelcollapse.vae.models import count_params

Z = 4.0  # Monte-Carlo tolerance in standard errors


def _spd(rng, d, scale=1.0):
    """A random symmetric positive-definite d x d matrix with eigenvalues in [0.1, 2] * scale."""
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return (q * rng.uniform(0.1, 2.0, d)) @ q.T * scale


# -- class histogram, entropy, confidence


def test_class_histogram_of_labels_and_of_probabilities():
    labels = np.array([0, 2, 2, 3, 3, 3])
    np.testing.assert_array_equal(metrics.class_histogram(labels, 5), [1 / 6, 0, 2 / 6, 3 / 6, 0])
    # Probabilities count by their argmax, not by their mass.
    probs = np.array([[0.6, 0.4], [0.1, 0.9], [0.2, 0.8], [0.45, 0.55]])
    np.testing.assert_array_equal(metrics.class_histogram(probs, 2), [0.25, 0.75])
    with pytest.raises(ValueError, match="labels outside"):
        metrics.class_histogram(np.array([0, 5]), 5)
    with pytest.raises(ValueError, match="n_classes"):
        metrics.class_histogram(probs, 3)


def test_entropy_known_values_and_scipy():
    assert metrics.entropy(np.full(10, 0.1)) == pytest.approx(np.log(10), rel=1e-14)
    assert metrics.entropy(np.eye(10)[3]) == 0.0
    assert metrics.entropy(np.array([2, 2, 0, 0])) == pytest.approx(np.log(2), rel=1e-14)  # counts normalise
    p = np.random.default_rng(0).dirichlet(np.ones(7), size=5)  # [5, 7]: batched along the last axis
    np.testing.assert_allclose(metrics.entropy(p), stats.entropy(p, axis=1), rtol=1e-12)
    with pytest.raises(ValueError, match="non-negative"):
        metrics.entropy(np.array([0.5, -0.1, 0.6]))


def test_mean_confidence():
    probs = np.array([[0.7, 0.2, 0.1], [0.3, 0.3, 0.4], [0.0, 1.0, 0.0]])
    assert metrics.mean_confidence(probs) == pytest.approx((0.7 + 0.4 + 1.0) / 3, rel=1e-14)


# -- improved precision and recall


def _reference_precision_recall(real, fake, k):
    """Brute force, independently: k-NN radii by scikit-learn, memberships from scipy's cdist."""
    from scipy.spatial.distance import cdist
    from sklearn.neighbors import NearestNeighbors

    def radii(x):  # k + 1 neighbours: the first is the point itself, at distance 0
        return NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x)[0][:, k]

    precision = np.mean(np.any(cdist(fake, real) <= radii(real)[None, :], axis=1))
    recall = np.mean(np.any(cdist(real, fake) <= radii(fake)[None, :], axis=1))
    return precision, recall


def test_precision_recall_identical_sets_are_one():
    x = np.random.default_rng(1).normal(size=(300, 16))
    assert metrics.precision_recall(x, x.copy(), k=3) == (1.0, 1.0)


def test_precision_recall_far_apart_sets_are_zero():
    rng = np.random.default_rng(2)
    real, fake = rng.normal(size=(200, 8)), rng.normal(size=(150, 8)) + 100.0
    assert metrics.precision_recall(real, fake, k=3) == (0.0, 0.0)


def test_precision_recall_subset_cluster_by_hand():
    # Real: the integers 0..19 on a line (embedded in 2-D). Generated: 0..4, a cluster of them.
    # Precision: every generated point is a real point, inside its own ball -> 1.
    # Recall: the generated set's own 3-NN radii (itself excluded) are 3, 2, 2, 2, 3 for 0..4
    # (point 0: neighbours at 1, 2, 3; point 2: at 1, 1, 2, 2), so its manifold is
    # [-3, 3] u [-1, 3] u [0, 4] u [1, 5] u [1, 7] = [-3, 7]: real points 0..7, 8 of 20 -> 0.4.
    # The ball around 4 reaches 7 exactly: closed balls (<=), as the reference implementation.
    real = np.stack([np.arange(20.0), np.zeros(20)], axis=1)
    fake = real[:5]
    np.testing.assert_array_equal(metrics.knn_radii(fake, k=3), [3, 2, 2, 2, 3])
    assert metrics.precision_recall(real, fake, k=3) == (1.0, 0.4)
    # Swapping the roles swaps the answers.
    assert metrics.precision_recall(fake, real, k=3) == (0.4, 1.0)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_precision_recall_against_brute_force_reference(monkeypatch, k):
    # Two overlapping Gaussian clouds, so that both answers are strictly between 0 and 1; blocks of
    # 64 rows so that the batching (several blocks and a partial last one) is exercised too.
    monkeypatch.setattr(metrics, "BLOCK", 64)
    rng = np.random.default_rng(3)
    real = rng.normal(size=(500, 5))
    fake = 0.7 * rng.normal(size=(300, 5)) + 1.5
    ours = metrics.precision_recall(real, fake, k=k)
    ref = _reference_precision_recall(real, fake, k)
    assert 0.05 < ref[0] < 0.95 and 0.05 < ref[1] < 0.95
    assert ours == pytest.approx(ref, abs=0.5 / 500)  # counts must agree exactly


def test_precision_recall_with_given_real_radii_is_the_same():
    rng = np.random.default_rng(4)
    real, fake = rng.normal(size=(200, 3)), rng.normal(size=(100, 3)) + 0.5
    radii = metrics.knn_radii(real, k=3)
    assert metrics.precision_recall(real, fake, k=3, real_radii=radii) == metrics.precision_recall(real, fake, k=3)
    # the radii are used, not recomputed: radii of zero put no generated point inside
    assert metrics.precision_recall(real, fake, k=3, real_radii=np.zeros(200))[0] == 0.0
    with pytest.raises(ValueError, match="real_radii"):
        metrics.precision_recall(real, fake, k=3, real_radii=radii[:10])


def test_precision_recall_checks_arguments():
    x = np.zeros((10, 3))
    with pytest.raises(ValueError, match="k must be"):
        metrics.precision_recall(x, x, k=10)
    with pytest.raises(ValueError, match="features"):
        metrics.precision_recall(x, np.zeros((10, 4)))
    with pytest.raises(ValueError, match="finite"):
        metrics.precision_recall(x, np.full((10, 3), np.nan))


# -- Frechet distance


def _frechet_closed_form(mu1, s1, mu2, s2):
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2}) with scipy's general matrix square root."""
    root = linalg.sqrtm(s1 @ s2)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2) - 2 * np.real(np.trace(root)))


def test_frechet_identical_sets_is_zero():
    x = np.random.default_rng(4).normal(size=(2000, 32)) @ _spd(np.random.default_rng(5), 32)
    d = metrics.frechet_distance(x, x.copy())
    cov_trace = np.trace(np.cov(x, rowvar=False))
    # Rounding only: a few hundred ulps of the traces that cancel.
    assert 0.0 <= d <= 1e-10 * cov_trace


@pytest.mark.parametrize("d", [1, 2, 10, 64])
def test_frechet_from_fits_matches_scipy_sqrtm(d):
    rng = np.random.default_rng(10 + d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = _spd(rng, d), _spd(rng, d, scale=3.0)
    ours = metrics.frechet_distance_from_fits(mu1, s1, mu2, s2)
    assert ours == pytest.approx(_frechet_closed_form(mu1, s1, mu2, s2), rel=1e-9, abs=1e-9)


def test_frechet_of_commuting_covariances_closed_form():
    # Diagonal covariances commute: (S1 S2)^{1/2} = diag(s1 s2), so the distance is
    # ||mu1 - mu2||^2 + sum_i (s1_i - s2_i)^2 with s the standard deviations.
    sd1, sd2 = np.array([1.0, 2.0, 0.5]), np.array([3.0, 2.0, 0.1])
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((sd1 - sd2) ** 2)
    got = metrics.frechet_distance_from_fits(mu1, np.diag(sd1 ** 2), mu2, np.diag(sd2 ** 2))
    assert got == pytest.approx(expected, rel=1e-12)


def test_frechet_singular_covariance_stays_real_and_finite():
    # Rank-deficient covariances (a collapsed generator's features): the distance is still defined;
    # for S1 = S2 = P (a projection) it is ||mu1 - mu2||^2 exactly.
    p = np.diag([1.0, 1.0, 0.0, 0.0])
    assert metrics.frechet_distance_from_fits(np.zeros(4), p, np.ones(4), p) == pytest.approx(4.0, abs=1e-12)


def test_frechet_of_samples_with_exact_moments_equals_closed_form():
    # Samples re-coloured so that their mean and (ddof=1) covariance are exactly the targets: then the
    # Gaussian fits ARE the target Gaussians, and the sample distance must equal the closed form.
    rng = np.random.default_rng(6)
    d, n = 6, 500

    def exact(mu, cov):
        z = rng.normal(size=(n, d))
        z -= z.mean(axis=0)
        white = np.linalg.solve(np.linalg.cholesky(np.cov(z, rowvar=False)), z.T).T
        return mu + white @ np.linalg.cholesky(cov).T

    mu1, mu2, s1, s2 = rng.normal(size=d), rng.normal(size=d), _spd(rng, d), _spd(rng, d, 2.0)
    x1, x2 = exact(mu1, s1), exact(mu2, s2)
    assert metrics.frechet_distance(x1, x2) == pytest.approx(_frechet_closed_form(mu1, s1, mu2, s2), rel=1e-9)


def test_frechet_monte_carlo_against_population_value():
    # R replicates of n iid points per set: the mean estimate is within Z standard errors of the
    # population distance plus the estimator's bias. The mean term's bias is exactly
    # (tr S1 + tr S2) / n (E||xbar1 - xbar2||^2); the square-root term's is O(tr / n) as well
    # (1-D: E[s1_hat s2_hat] ~ s1 s2 (1 - 1/(4n))^2), bounded here by the same amount again.
    rng = np.random.default_rng(7)
    d, n, reps = 3, 4000, 30
    mu1, mu2, s1, s2 = np.zeros(d), np.array([0.5, -0.5, 0.0]), _spd(rng, d), _spd(rng, d)
    truth = _frechet_closed_form(mu1, s1, mu2, s2)
    est = np.array([metrics.frechet_distance(rng.multivariate_normal(mu1, s1, n), rng.multivariate_normal(mu2, s2, n))
                    for _ in range(reps)])
    se = est.std(ddof=1) / np.sqrt(reps)
    bias_bound = 2 * (np.trace(s1) + np.trace(s2)) / n
    assert abs(est.mean() - truth) <= Z * se + bias_bound


# -- kernel density estimate


def test_kde_scott_matches_scipy_1d_and_2d(monkeypatch):
    monkeypatch.setattr(metrics, "BLOCK", 50)  # several blocks of grid points
    rng = np.random.default_rng(8)
    x1 = np.concatenate([rng.normal(size=300), rng.normal(4.0, 0.5, size=100)])
    grid1 = np.linspace(-4, 7, 203)
    np.testing.assert_allclose(metrics.kde(x1, grid1), stats.gaussian_kde(x1)(grid1), rtol=1e-10, atol=1e-14)
    x2 = rng.multivariate_normal([0, 1], [[1.0, 0.6], [0.6, 2.0]], size=400)  # [N, d]
    grid2 = rng.normal(size=(120, 2)) * 2
    np.testing.assert_allclose(metrics.kde(x2, grid2), stats.gaussian_kde(x2.T)(grid2.T), rtol=1e-10, atol=1e-14)


def test_kde_absolute_bandwidth_and_normalisation():
    rng = np.random.default_rng(9)
    x = rng.gamma(2.0, size=500)
    grid = np.linspace(-3, 15, 4001)
    h = 0.3  # the kernel's standard deviation: scipy's factor is h / std(x)
    dens = metrics.kde(x, grid, bandwidth=h)
    np.testing.assert_allclose(dens, stats.gaussian_kde(x, bw_method=h / x.std(ddof=1))(grid), rtol=1e-10,
                               atol=1e-14)
    # A density: the grid covers all but a negligible tail, and the trapezoid rule is ~1e-6 here.
    assert np.trapezoid(dens, grid) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="bandwidth"):
        metrics.kde(x, grid, bandwidth=0.0)


# -- the classifier


@pytest.mark.parametrize("shape, blocks", [((28, 28, 1), 2), ((8, 8, 1), 1)])
def test_classifier_shapes_and_parameter_count(shape, blocks):
    # Abstract parameters: shapes without initialising (or computing) anything.
    model = nnx.eval_shape(lambda: classifier.DigitClassifier(image_shape=shape, rngs=nnx.Rngs(0)))
    h, w, c = shape
    # 3x3 convs (9 c_in c_out + c_out), a dense layer from the pooled map to 128, logits 128 -> 10.
    channels = (c,) + classifier.CHANNELS[:blocks]
    convs = sum(9 * a * b + b for a, b in zip(channels, channels[1:]))
    flat = (h // 2 ** blocks) * (w // 2 ** blocks) * channels[-1]
    assert count_params(model) == convs + flat * 128 + 128 + 128 * 10 + 10
    x = jax.ShapeDtypeStruct((5,) + shape, jnp.float32)  # shapes only: nothing is computed
    assert nnx.eval_shape(lambda m, v: m(v), model, x).shape == (5, 10)
    assert nnx.eval_shape(lambda m, v: m.features(v), model, x).shape == (5, classifier.HIDDEN)


def test_reshape_max_pool_equals_nnx_max_pool_and_its_gradient():
    x = jax.random.normal(jax.random.key(0), (2, 8, 6, 3))  # continuous values: no ties
    ref = lambda v: nnx.max_pool(v, (2, 2), (2, 2))  # noqa: E731
    np.testing.assert_array_equal(jax.jit(classifier._max_pool_2x2)(x), jax.jit(ref)(x))
    g = jax.jit(jax.grad(lambda v: jnp.sum(jnp.sin(classifier._max_pool_2x2(v)))))(x)
    g_ref = jax.jit(jax.grad(lambda v: jnp.sum(jnp.sin(ref(v)))))(x)
    np.testing.assert_array_equal(g, g_ref)


def test_classifier_rejects_bad_arguments():
    with pytest.raises(ValueError, match="image_shape"):
        classifier.DigitClassifier(image_shape=(5, 5, 1), rngs=nnx.Rngs(0))
    x, y = np.zeros((64, 8, 8, 1), np.float32), np.zeros(64, np.int32)
    with pytest.raises(ValueError, match="epochs"):
        classifier.train_classifier(x, y, seed=0, epochs=0)
    with pytest.raises(ValueError, match="validation"):
        classifier.train_classifier(x, y, seed=0, epochs=1, validation=1.0)
    with pytest.raises(ValueError, match="labels"):
        classifier.train_classifier(x, y + 10, seed=0, epochs=1)


@pytest.fixture(scope="module")
def digits_model():
    """Trained on the fixed digits split of `load_images` (1,497 train / 300 test), ~3 s."""
    train, test = load_images("digits", split="train"), load_images("digits", split="test")
    model, report = classifier.train_classifier(train.images, train.labels, seed=0, epochs=30, batch_size=32,
                                                learning_rate=3e-3, validation=0.0, test=(test.images, test.labels))
    return model, report, test


def test_digits_classifier_accuracy(digits_model):
    # Measured ~99%; one standard error at 98% of 300 images is 0.8%, so 95% is ~4 SE of margin.
    _, report, _ = digits_model
    assert report["test_accuracy"] >= 0.95
    assert report["n_val"] == 0 and report["val_accuracy"] is None and report["steps"] == 30 * (1497 // 32)


def test_predictions_batched_rebuilt_and_consistent(digits_model):
    model, report, test = digits_model
    probs = classifier.predict_proba(model, test.images, batch_size=1000)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    # Batch size (and the padding of the last batch) does not change the answer.
    np.testing.assert_allclose(classifier.predict_proba(model, test.images, batch_size=7), probs, atol=1e-6)
    feats = classifier.features(model, test.images, batch_size=64)
    np.testing.assert_allclose(feats, np.asarray(model.features(jnp.asarray(test.images))), rtol=1e-5, atol=1e-5)
    assert feats.min() >= 0.0  # after the ReLU
    assert np.mean(probs.argmax(axis=1) == test.labels) == report["test_accuracy"]
    # Rebuilt from its state with eval_shape + update, as a checkpoint restore does.
    state = nnx.state(model)
    rebuilt = nnx.eval_shape(lambda: classifier.DigitClassifier(image_shape=(8, 8, 1), rngs=nnx.Rngs(1)))
    nnx.update(rebuilt, jax.tree.map(np.asarray, state))
    np.testing.assert_array_equal(classifier.predict_proba(rebuilt, test.images), probs)


def test_training_is_deterministic_given_the_seed_and_compiles_once():
    train = load_images("digits", split="train")
    runs = [classifier.train_classifier(train.images, train.labels, seed=5, epochs=1, batch_size=64)]
    compiled = classifier._train_step._cache_size()
    runs += [classifier.train_classifier(train.images, train.labels, seed=s, epochs=1, batch_size=64) for s in (5, 6)]
    assert classifier._train_step._cache_size() == compiled  # new models and seeds reuse the step
    (a, ra), (b, rb), (c, _) = runs
    state_a, state_b, state_c = (jax.tree.leaves(nnx.state(m, nnx.Param)) for m in (a, b, c))
    for u, v in zip(state_a, state_b):
        np.testing.assert_array_equal(u, v)
    assert ra["val_accuracy"] == rb["val_accuracy"] and ra["n_val"] == round(0.1 * 1497)
    assert any(not np.array_equal(u, w) for u, w in zip(state_a, state_c))


def _mnist(split):
    data_dir = real_data_dir("mnist")
    try:
        return load_images("mnist", split=split, data_dir=data_dir, download=False)
    except fetch.DataNotFoundError as err:
        pytest.skip(f"no MNIST under {data_dir}: {err}")


def test_mnist_classifier_accuracy_and_class_histogram():
    # Two epochs, ~30-40 s on 2 busy CPU cores; measured 98.4% test accuracy.
    train, test = _mnist("train"), _mnist("test")
    model, report = classifier.train_classifier(train.images, train.labels, seed=0, epochs=2, batch_size=128,
                                                learning_rate=1e-3, validation=0.1, test=(test.images, test.labels))
    assert report["test_accuracy"] >= 0.97
    # The predicted class histogram differs from the true one by at most the error rate in total
    # variation: each misclassified image moves 1/N of mass from one class to another.
    probs = classifier.predict_proba(model, test.images)
    tv = 0.5 * np.abs(metrics.class_histogram(probs, 10) - metrics.class_histogram(test.labels, 10)).sum()
    assert tv <= 1 - report["test_accuracy"] + 1e-12
