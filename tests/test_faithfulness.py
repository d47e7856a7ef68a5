import numpy as np
import pytest
import torch
from torch import nn

from utilities import GradCAM
from utilities.faithfulness import (
    Curve,
    cascading_randomization,
    deletion_and_insertion,
    deletion_curve,
    insertion_curve,
    pointing_game,
    random_map,
    randomized_networks,
    spearman_rank_correlation,
)

SIZE = 32
REGION = (slice(8, 16), slice(4, 20))  # the only pixels class 0 looks at
CHECKER = (torch.arange(SIZE)[:, None] + torch.arange(SIZE)[None, :]) % 2 * 2.0 - 1.0  # +1/-1 texture


class RegionScorer(nn.Module):
    """A model whose class-0 logit is the checkerboard texture inside one known region: the right map is known.

    Zeros (deletion) and blur (insertion's start) both erase the texture, so
    the score depends only on how many region pixels are left or put back.
    """

    def forward(self, x):
        texture = (x * CHECKER)[:, :, REGION[0], REGION[1]].mean(dim=(1, 2, 3))
        return torch.stack([texture, torch.zeros_like(texture)], dim=1)


@pytest.fixture
def toy():
    torch.manual_seed(0)
    inputs = (1.0 + 0.5 * CHECKER + 0.05 * torch.randn(3, SIZE, SIZE)).unsqueeze(0)
    perfect = torch.zeros(SIZE, SIZE)
    perfect[REGION] = 1.0
    return RegionScorer(), inputs, perfect


def test_spearman_known_values():
    a = torch.arange(12.0).reshape(3, 4)
    assert spearman_rank_correlation(a, a * 2 + 1) == pytest.approx(1.0)
    assert spearman_rank_correlation(a, -a) == pytest.approx(-1.0)
    assert spearman_rank_correlation(a, torch.ones(3, 4)) == 0.0  # undefined, reported as no agreement


def test_perfect_map_beats_random_in_deletion_and_insertion(toy):
    network, inputs, perfect = toy
    random = random_map((SIZE, SIZE), seed=1)
    kwargs = dict(target=0, steps=16, score="logit")
    perfect_deletion, random_deletion = (deletion_curve(network, inputs, m, **kwargs).area for m in (perfect, random))
    perfect_insertion, random_insertion = (insertion_curve(network, inputs, m, **kwargs).area for m in (perfect, random))
    assert perfect_deletion < 0.5 * random_deletion
    assert perfect_insertion > random_insertion + 0.1


def test_constant_map_scores_as_the_random_baseline(toy):
    network, inputs, _ = toy
    kwargs = dict(target=0, steps=16, score="logit")
    baseline = np.mean([deletion_curve(network, inputs, random_map((SIZE, SIZE), seed=s), **kwargs).area for s in range(5)])
    constant = deletion_curve(network, inputs, torch.ones(SIZE, SIZE), **kwargs).area
    assert constant == pytest.approx(baseline, abs=0.05)


def test_coarse_random_map_is_smooth_and_seeded():
    coarse = random_map((28, 44), seed=3, cells=(7, 11))
    fine = random_map((28, 44), seed=3)
    assert coarse.shape == fine.shape == (28, 44)
    assert 0 <= coarse.min() and coarse.max() <= 1
    assert coarse.diff(dim=1).abs().mean() < fine.diff(dim=1).abs().mean() / 3  # neighbouring pixels agree
    assert torch.equal(coarse, random_map((28, 44), seed=3, cells=(7, 11)))


def test_curve_ends_and_shape(toy):
    network, inputs, perfect = toy
    curve = deletion_curve(network, inputs, perfect, target=0, steps=8, score="logit")
    assert curve.fractions[0] == 0 and curve.fractions[-1] == 1 and len(curve.scores) == 9
    assert curve.scores[0] == pytest.approx(network(inputs)[0, 0].item())
    assert curve.scores[-1] == pytest.approx(0.0, abs=1e-6)  # everything replaced by zeros


def test_map_of_another_size_is_resized(toy):
    network, inputs, perfect = toy
    small = perfect[::4, ::4]
    assert deletion_curve(network, inputs, small, target=0, steps=8).scores.shape == (9,)


def test_bad_inputs_are_explained(toy):
    network, inputs, perfect = toy
    with pytest.raises(ValueError, match="score must be"):
        deletion_curve(network, inputs, perfect, target=0, score="loss")
    with pytest.raises(ValueError, match="NaN"):
        deletion_curve(network, inputs, torch.full((SIZE, SIZE), float("nan")), target=0)
    with pytest.raises(ValueError, match="one preprocessed image"):
        deletion_curve(network, inputs[0], perfect, target=0)


def test_pointing_game_hits_and_misses():
    left = torch.zeros(10, 20, dtype=torch.bool)
    left[:, :10] = True
    cam = torch.zeros(10, 20)
    cam[5, 3] = 1.0
    assert pointing_game(cam, left)
    assert not pointing_game(cam, ~left)  # a map that points at the other object fails
    assert not pointing_game(torch.ones(10, 20), left)  # no peak, no hit
    near = torch.zeros(10, 20)
    near[5, 11] = 1.0  # two columns right of the object's last column (9)
    assert not pointing_game(near, left) and pointing_game(near, left, tolerance=2)


def test_cascading_randomization_separates_model_dependent_from_model_blind(lite_model, chelsea_input):
    def grad_cam_map(network, inputs):
        return GradCAM(network, "layer4")(inputs, 285).raw[0]

    def edge_map(network, inputs):  # looks only at the image, never at the network
        gray = inputs[0].mean(dim=0)
        return (gray[1:, 1:] - gray[:-1, :-1]).abs()

    stages = [("fc", ("fc",)), ("layer4", ("layer4",)), ("layer3", ("layer3",))]
    grad_steps = cascading_randomization(lite_model.network, chelsea_input, grad_cam_map, stages)
    edge_steps = cascading_randomization(lite_model.network, chelsea_input, edge_map, stages)
    assert [s.stage for s in grad_steps] == ["original", "fc", "layer4", "layer3"]
    assert grad_steps[0].correlation == 1.0
    assert abs(grad_steps[-1].correlation) < 0.5  # Grad-CAM depends on the weights
    assert all(step.correlation == pytest.approx(1.0) for step in edge_steps)  # fails the sanity check
    assert lite_model.network.fc.weight.abs().sum() > 0 and not lite_model.network.training  # original untouched


def test_randomization_is_reproducible_and_leaves_the_global_seed_alone(lite_model, chelsea_input):
    def explain(network, inputs):
        return GradCAM(network, "layer4")(inputs, 285).raw[0]

    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    first = cascading_randomization(lite_model.network, chelsea_input, explain, [("fc", ("fc",))], seed=5)
    assert torch.rand(1) == expected_next
    second = cascading_randomization(lite_model.network, chelsea_input, explain, [("fc", ("fc",))], seed=5)
    assert first[1].correlation == second[1].correlation


def test_randomized_networks_draw_the_same_weights_whatever_the_caller_draws(lite_model):
    stages = [("fc", ("fc",)), ("layer4", ("layer4",))]

    def weights(net):  # copies: the network is changed in place at the next step
        return net.fc.weight.clone(), {k: v.clone() for k, v in net.layer4[0].state_dict().items()}

    torch.manual_seed(7)
    expected_next = torch.rand(1)
    torch.manual_seed(7)
    quiet = [(label, *weights(net)) for label, net in randomized_networks(lite_model.network, stages, seed=3)]
    assert torch.rand(1) == expected_next  # the global random state is left as it was
    noisy = []
    for label, net in randomized_networks(lite_model.network, stages, seed=3):
        torch.rand(100)  # the caller draws random numbers between the steps
        noisy.append((label, *weights(net)))
    assert [label for label, *_ in noisy] == ["fc", "layer4"]
    for (_, fc_quiet, block_quiet), (_, fc_noisy, block_noisy) in zip(quiet, noisy):
        assert torch.equal(fc_quiet, fc_noisy)
        assert all(torch.equal(block_quiet[k], block_noisy[k]) for k in block_quiet)
    assert not torch.equal(quiet[0][1], lite_model.network.fc.weight)  # randomised, and the original untouched
    trained_block = lite_model.network.layer4[0].state_dict()
    assert all(torch.equal(quiet[0][2][k], trained_block[k]) for k in trained_block)  # layer4 still trained after fc
    assert not all(torch.equal(quiet[1][2][k], trained_block[k]) for k in trained_block)  # and random after layer4
    other = next(randomized_networks(lite_model.network, stages, seed=4))[1]
    assert not torch.equal(other.fc.weight, quiet[0][1])
    # cascading_randomization explains exactly these copies, even with an explanation that draws random numbers
    seen = []

    def explain(net, inputs):
        seen.append(net.fc.weight.clone())
        return torch.rand(2, 2)

    cascading_randomization(lite_model.network, torch.zeros(1, 3, 64, 64), explain, stages, seed=3, original=torch.rand(2, 2))
    assert len(seen) == 2 and all(torch.equal(a, b) for a, b in zip(seen, [fc for _, fc, _ in quiet]))


def test_randomization_reuses_a_given_original_map(lite_model, chelsea_input):
    calls = []

    def explain(network, inputs):
        calls.append(network)
        return GradCAM(network, "layer4")(inputs, 285).raw[0]

    stages = [("fc", ("fc",))]
    computed = cascading_randomization(lite_model.network, chelsea_input, explain, stages, seed=2)
    assert len(calls) == 2  # the original network, then the randomised one
    given = cascading_randomization(lite_model.network, chelsea_input, explain, stages, seed=2, original=computed[0].map)
    assert len(calls) == 3 and calls[-1] is not lite_model.network  # only the randomised network ran
    assert torch.equal(given[0].map, computed[0].map) and given[1].correlation == computed[1].correlation
    with pytest.raises(ValueError, match="2-D map"):
        cascading_randomization(lite_model.network, chelsea_input, explain, stages, original=computed[0].map[None])


def test_deletion_and_insertion_equals_the_single_curves(toy):
    network, inputs, perfect = toy
    maps = {"perfect": perfect, "random": random_map((SIZE, SIZE), seed=2), "coarse": random_map((SIZE, SIZE), 3, (4, 4))}
    together = deletion_and_insertion(network, inputs, maps, target=0, steps=8, batch_size=5, seed=1)
    assert list(together) == list(maps)
    for name, saliency in maps.items():
        deletion, insertion = together[name]
        alone = (
            deletion_curve(network, inputs, saliency, target=0, steps=8, score="logit", seed=1),
            insertion_curve(network, inputs, saliency, target=0, steps=8, score="logit", seed=1),
        )
        for shared, single in zip((deletion, insertion), alone):
            assert shared.kind == single.kind
            np.testing.assert_allclose(shared.fractions, single.fractions)
            np.testing.assert_allclose(shared.scores, single.scores, atol=1e-6)


def test_deletion_and_insertion_checks_its_inputs(toy):
    network, inputs, perfect = toy
    with pytest.raises(ValueError, match="score must be"):
        deletion_and_insertion(network, inputs, {"m": perfect}, target=0, score="loss")
    with pytest.raises(ValueError, match="one preprocessed image"):
        deletion_and_insertion(network, inputs[0], {"m": perfect}, target=0)
    probabilities = deletion_and_insertion(network, inputs, {"m": perfect}, target=0, steps=4, score="probability")
    deletion, _ = probabilities["m"]
    assert np.all((deletion.scores >= 0) & (deletion.scores <= 1))


def test_normalized_curves_run_from_the_photo_to_the_perturbed_image(toy):
    network, inputs, perfect = toy
    deletion = deletion_curve(network, inputs, perfect, target=0, steps=8, score="logit")
    insertion = insertion_curve(network, inputs, perfect, target=0, steps=8, score="logit")
    assert (deletion.kind, insertion.kind) == ("deletion", "insertion")
    assert deletion.normalized().scores[0] == pytest.approx(1.0) and deletion.normalized().scores[-1] == pytest.approx(0.0)
    assert insertion.normalized().scores[0] == pytest.approx(0.0) and insertion.normalized().scores[-1] == pytest.approx(1.0)
    # a linear rescaling by the curve's own ends
    photo, grey = deletion.scores[0], deletion.scores[-1]
    assert deletion.normalized_area == pytest.approx((deletion.area - grey) / (photo - grey))
    # the perfect map removes the evidence first: its normalised deletion area is small, insertion large
    assert deletion.normalized_area < 0.3 and insertion.normalized_area > 0.7


def test_normalization_with_negative_logits_and_degenerate_curves():
    fractions = np.linspace(0, 1, 5)
    curve = Curve(fractions, np.array([-1.0, -2.0, -4.0, -6.0, -5.0]), "deletion")  # photo -1, grey -5
    np.testing.assert_allclose(curve.normalized().scores, [1.0, 0.75, 0.25, -0.25, 0.0])  # may leave [0, 1]
    flat = Curve(fractions, np.full(5, 2.0), "insertion")
    assert np.isnan(flat.normalized_area)  # both ends score the same: no scale
    with pytest.raises(ValueError, match="kind"):
        Curve(fractions, np.zeros(5)).normalized()
    assert Curve(fractions, np.ones(5)).area == pytest.approx(1.0)  # old two-argument form still works
