"""What runs on a CUDA GPU: bf16 autocast, step == forward, seeded sampling, a short training run
whose checkpoint loads on the CPU. Skipped without CUDA; `scripts/gpu_check.sh` runs them."""

import pytest
import torch
from test_models import CASES, IDS, V, random_ids, step_in_chunks, tiny
from train_fixtures import make_dataset, tiny_config

from melodygen.devices import autocast
from melodygen.encodings import get_encoding
from melodygen.models import MODELS, build_model
from melodygen.sampling.decoding import sample
from melodygen.sampling.files import sample_to_midi
from melodygen.sampling.request import GenerationRequest

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
CUDA = torch.device("cuda")


@pytest.mark.parametrize("kind,settings", CASES, ids=IDS)
def test_bf16_autocast_step_matches_forward(kind, settings):
    model = tiny(kind, settings).to(CUDA)
    ids = random_ids().to(CUDA)
    with autocast(CUDA), torch.no_grad():
        full = model(ids)
        stepped, _ = step_in_chunks(model, ids, [5] + [1] * 7)
    assert full.dtype == torch.bfloat16
    assert full.shape == stepped.shape == (3, 12, V)
    torch.testing.assert_close(stepped.float(), full.float(), atol=0.1, rtol=0.1)


@pytest.mark.parametrize("kind,settings", CASES, ids=IDS)
def test_fp32_on_cuda_matches_the_cpu(kind, settings):
    model = tiny(kind, settings)
    ids = random_ids()
    with torch.no_grad():
        on_cpu = model(ids)
        on_gpu = model.to(CUDA)(ids.to(CUDA)).cpu()
    torch.testing.assert_close(on_gpu, on_cpu, atol=1e-3, rtol=1e-3)  # TF32 matmuls allowed


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_seeded_sampling_on_cuda_repeats(kind):
    encoding = get_encoding("melody")
    torch.manual_seed(0)
    model = build_model(kind, dict(CASES)[kind], encoding.vocab.size).to(CUDA)
    draw = lambda seed: sample(model, encoding, num_outputs=4, max_events=64, device=CUDA,  # noqa: E731
                               generator=torch.Generator(CUDA).manual_seed(seed), stop_on_eos=False)
    assert draw(3) == draw(3) != draw(4)


def test_training_on_cuda_writes_a_checkpoint_the_cpu_loads(tmp_path):
    from melodygen.training import train

    dataset = make_dataset(tmp_path / "data")
    result = train(tiny_config(dataset, device="cuda", max_steps=8), tmp_path / "run", progress=False)
    assert result.step == 8
    saved = torch.load(tmp_path / "run" / "best.pt", weights_only=True)  # no map_location
    assert all(t.device.type == "cpu" for t in saved["model"]["state_dict"].values())
    written = sample_to_midi(tmp_path / "run" / "best.pt", tmp_path / "s", GenerationRequest(events=8),
                             device="cpu")
    assert written[0].path.exists()
