#!/usr/bin/env python3
"""Golden tensors of the upstream Qwen-VL code (modeling_qwen.py, visual.py) in float32 for one
checkpoint, in the conformance case format (shared conformance README, "Case file format").

    python3 tools/fullsize_goldens.py --upstream DIR --images DIR --prompt PROMPT.json --out DIR
        (--checkpoint DIR | --plan PLAN.json --write DIR [--seed N])  [--device cuda|cpu]

--plan writes the PCG64 checkpoint first with tools/pcg_checkpoint.py (printing each shard's
SHA-256, to compare with the TypeScript writer's) and then runs it. PROMPT.json (written by
tools/fullsize-goldens.ts) holds {name, input_ids, images, prefill_positions, vision_blocks,
llm_blocks, greedy_steps}.

How the upstream code runs: its files are imported unchanged as a package. Only transformers'
base classes are replaced by minimal stand-ins (PreTrainedModel = nn.Module holding the config;
output classes = attribute tuples), because none of their code is on the forward path and
transformers 5 no longer provides some of what the files import. GPTQ linears are dequantised
with the documented formula W = scales[g_idx] * (q - (z + 1)) into float32 nn.Linear layers with a
bias (AutoGPTQ's QuantLinear always adds one). TF32 is off, so every matmul is IEEE float32.

Outputs: llm-NAME.msgpack, and the vision case of each image split into vision-IMAGE.partK.msgpack
files (each below 16 MiB: pixels_u8 is repeated in every part so each is a valid case by itself).
"""
import argparse, json, logging, os, shutil, struct, sys, time, types
import numpy as np

VERSION = 1  # bump when the case contents or their meaning change


# ------------------------------------------------------------------ transformers stand-ins
def install_transformers_standins():
    import torch
    from torch import nn

    class _Logger(logging.Logger):
        def warning_once(self, *a, **k):
            self.warning(*a, **k)

        def warn(self, *a, **k):  # removed from logging.Logger in Python 3.13
            self.warning(*a, **k)

    def get_logger(name=None):
        logging.setLoggerClass(_Logger)
        lg = logging.getLogger(name)
        logging.setLoggerClass(logging.Logger)
        return lg

    class PretrainedConfig:
        def __init__(self, **kwargs):
            self.output_attentions = False
            self.output_hidden_states = False
            self.return_dict = True
            for k, v in kwargs.items():
                setattr(self, k, v)

        @property
        def use_return_dict(self):
            return self.return_dict

    class ModelOutput:
        _fields = ()

        def __init__(self, **kw):
            for f in self._fields:
                setattr(self, f, kw.get(f))

        def to_tuple(self):
            return tuple(getattr(self, f) for f in self._fields if getattr(self, f) is not None)

        def __getitem__(self, i):
            return self.to_tuple()[i]

    class BaseModelOutputWithPast(ModelOutput):
        _fields = ("last_hidden_state", "past_key_values", "hidden_states", "attentions")

    class CausalLMOutputWithPast(ModelOutput):
        _fields = ("loss", "logits", "past_key_values", "hidden_states", "attentions")

    class PreTrainedModel(nn.Module):
        def __init__(self, config, *a, **k):
            super().__init__()
            self.config = config

        def post_init(self):
            pass  # weights come from the checkpoint

        def get_head_mask(self, head_mask, num_layers):
            return [None] * num_layers if head_mask is None else head_mask

    class _Any:
        def __init__(self, *a, **k):
            pass

    tf = types.ModuleType("transformers")
    tf.PretrainedConfig = PretrainedConfig
    tf.PreTrainedTokenizer = _Any
    tf.GenerationConfig = _Any
    tf.AddedToken = _Any
    tf.StoppingCriteriaList = list
    mods = {"transformers": tf}
    for name in ["generation", "generation.logits_process", "generation.streamers", "generation.utils",
                 "modeling_outputs", "modeling_utils", "utils"]:
        m = types.ModuleType("transformers." + name)
        mods["transformers." + name] = m
    mods["transformers.generation"].LogitsProcessor = _Any
    mods["transformers.generation.logits_process"].LogitsProcessorList = list
    mods["transformers.generation.streamers"].BaseStreamer = _Any
    mods["transformers.generation.utils"].GenerateOutput = _Any
    mods["transformers.modeling_outputs"].BaseModelOutputWithPast = BaseModelOutputWithPast
    mods["transformers.modeling_outputs"].CausalLMOutputWithPast = CausalLMOutputWithPast
    mods["transformers.modeling_utils"].PreTrainedModel = PreTrainedModel
    mods["transformers.utils"].logging = types.SimpleNamespace(get_logger=get_logger)
    mods["transformers.utils"].try_to_load_from_cache = lambda *a, **k: None
    tf.generation = mods["transformers.generation"]
    tf.utils = mods["transformers.utils"]
    tf.logging = mods["transformers.utils"].logging
    sys.modules.update(mods)
    try:
        import einops  # noqa: F401  (the upstream rotary code imports it)
    except ImportError:
        install_einops_standin()


def install_einops_standin():
    """The two rearrange patterns modeling_qwen.py uses, for machines without einops."""
    def rearrange(x, pattern, **kw):
        if pattern == "n d -> 1 n 1 d":
            return x[None, :, None, :]
        if pattern == "... (j d) -> ... j d":
            j = kw["j"]
            return x.reshape(*x.shape[:-1], j, x.shape[-1] // j)
        raise ValueError(f"einops stand-in: pattern {pattern!r} not supported")
    m = types.ModuleType("einops")
    m.rearrange = rearrange
    import importlib.machinery
    m.__spec__ = importlib.machinery.ModuleSpec("einops", None)  # modeling_qwen.py checks find_spec
    sys.modules["einops"] = m


def import_upstream(upstream_dir, work):
    """The upstream files, unchanged, as package `qwen_upstream` (they use relative imports)."""
    pkg = os.path.join(work, "qwen_upstream")
    os.makedirs(pkg, exist_ok=True)
    for f in ["modeling_qwen.py", "visual.py", "configuration_qwen.py", "qwen_generation_utils.py"]:
        shutil.copy(os.path.join(upstream_dir, f), os.path.join(pkg, f))
    open(os.path.join(pkg, "__init__.py"), "w").close()
    sys.path.insert(0, work)
    import importlib
    return importlib.import_module("qwen_upstream.modeling_qwen")


# ------------------------------------------------------------------ checkpoint
def read_safetensors(ckpt_dir):
    """name -> numpy array (memory-mapped), over model.safetensors or the index's shards."""
    idx = os.path.join(ckpt_dir, "model.safetensors.index.json")
    files = sorted(set(json.load(open(idx))["weight_map"].values())) if os.path.exists(idx) else ["model.safetensors"]
    np_types = {"F16": np.float16, "F32": np.float32, "I32": np.int32, "BF16": np.uint16}
    out = {}
    for f in files:
        mm = np.memmap(os.path.join(ckpt_dir, f), dtype=np.uint8, mode="r")
        n = struct.unpack("<Q", bytes(mm[:8]))[0]
        header = json.loads(bytes(mm[8:8 + n]))
        for name, e in header.items():
            if name == "__metadata__":
                continue
            a, b = e["data_offsets"]
            out[name] = mm[8 + n + a: 8 + n + b].view(np_types[e["dtype"]]).reshape(e["shape"])
    return out


def dequantize_gptq(t, prefix, torch, dev):
    """W [in, out] = scales[g_idx] * (q - (z + 1)) (the conformance README's GPTQ formula)."""
    qweight = torch.from_numpy(np.ascontiguousarray(t[prefix + ".qweight"])).to(dev)
    qzeros = torch.from_numpy(np.ascontiguousarray(t[prefix + ".qzeros"])).to(dev)
    scales = torch.from_numpy(t[prefix + ".scales"].astype(np.float32)).to(dev)
    g_idx = torch.from_numpy(t[prefix + ".g_idx"].astype(np.int64)).to(dev)
    shifts = torch.arange(0, 32, 4, device=dev, dtype=torch.int32)
    q = ((qweight.unsqueeze(1) >> shifts.view(1, 8, 1)) & 15).reshape(-1, qweight.shape[1])
    z = ((qzeros.unsqueeze(2) >> shifts.view(1, 1, 8)) & 15).reshape(qzeros.shape[0], -1)
    w = scales[g_idx] * (q - (z[g_idx] + 1)).to(torch.float32)
    bias = torch.from_numpy(t[prefix + ".bias"].astype(np.float32)).to(dev)
    return w, bias


def load_weights(model, t, torch, dev):
    from torch import nn
    used = set()
    gptq = sorted({k[: -len(".qweight")] for k in t if k.endswith(".qweight")})
    for prefix in gptq:
        w, bias = dequantize_gptq(t, prefix, torch, dev)
        parent_name, attr = prefix.rsplit(".", 1)
        parent = model.get_submodule(parent_name)
        old = getattr(parent, attr)
        assert (old.in_features, old.out_features) == tuple(w.shape), f"{prefix}: {tuple(w.shape)} vs {old}"
        lin = nn.Linear(w.shape[0], w.shape[1], bias=True, device=dev, dtype=torch.float32)
        with torch.no_grad():
            lin.weight.copy_(w.t())
            lin.bias.copy_(bias)
        setattr(parent, attr, lin)
        used.update(prefix + s for s in [".qweight", ".qzeros", ".scales", ".g_idx", ".bias"])
        del w
    params = dict(model.named_parameters())
    missing = []
    for name, p in params.items():
        if name not in t:
            if not any(name.startswith(g + ".") for g in gptq):
                missing.append(name)
            continue
        a = t[name]
        assert tuple(a.shape) == tuple(p.shape), f"{name}: checkpoint {a.shape} vs model {tuple(p.shape)}"
        with torch.no_grad():
            p.copy_(torch.from_numpy(a.astype(np.float32)).to(dev))
        used.add(name)
    unused = sorted(set(t) - used)
    if missing or unused:
        raise SystemExit(f"weights do not match the model: missing {missing[:5]}, unused {unused[:5]}")


# ------------------------------------------------------------------ run
def f32(x):
    return x.detach().float().cpu().numpy().astype("<f4")


def tensor(arr, dtype):
    arr = np.ascontiguousarray(arr)
    return {"dtype": dtype, "shape": list(arr.shape), "data": arr.astype({"f32": "<f4", "i32": "<i4", "u8": "u1"}[dtype]).tobytes()}


def run(args):
    import torch
    install_transformers_standins()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    dev = torch.device(args.device)
    mq = import_upstream(args.upstream, args.work)
    from qwen_upstream.configuration_qwen import QWenConfig
    from PIL import Image

    prompt = json.load(open(args.prompt))
    ckpt = args.checkpoint or args.write
    cfg = json.load(open(os.path.join(ckpt, "config.json")))
    cfg.update(fp16=False, bf16=False, fp32=True)  # float32 goldens (modeling_qwen.py:740-770)
    config = QWenConfig(**cfg)
    t0 = time.time()
    if dev.type == "cuda":
        with torch.device(dev):
            model = mq.QWenLMHeadModel(config)
    else:
        model = mq.QWenLMHeadModel(config)
    load_weights(model, read_safetensors(ckpt), torch, dev)
    model = model.to(dev).eval()
    print(f"model built and loaded in {time.time() - t0:.1f} s", flush=True)

    visual = model.transformer.visual
    traced = {}
    hooks = []
    def keep(name, fn):
        def hook(_m, _inp, out):
            if name not in traced:  # the first (prefill) call only
                traced[name] = f32(fn(out))
        return hook
    hooks.append(visual.ln_pre.register_forward_hook(keep("vit.ln_pre", lambda o: o[0])))
    for k in prompt["vision_blocks"]:
        hooks.append(visual.transformer.resblocks[k].register_forward_hook(keep(f"vit.block.{k}", lambda o: o[:, 0])))  # LND
    hooks.append(visual.attn_pool.register_forward_hook(keep("vit.resampler", lambda o: o[0])))
    hooks.append(visual.register_forward_hook(keep("image_embeds", lambda o: o[0])))
    for k in prompt["llm_blocks"]:
        hooks.append(model.transformer.h[k].register_forward_hook(keep(f"llm.block.{k}", lambda o: o[0][0, -1])))

    ids = prompt["input_ids"]
    L = len(ids)
    S = prompt["greedy_steps"]
    os.chdir(args.images)  # image paths in the ids are relative to the images folder
    with torch.no_grad():
        x = torch.tensor([ids], dtype=torch.long, device=dev)
        out = model(input_ids=x, attention_mask=torch.ones(1, L, dtype=torch.long, device=dev), use_cache=True, return_dict=True)
        logits = out.logits[0]
        pos = prompt["prefill_positions"]
        prefill = f32(logits[pos])
        past = out.past_key_values
        row = logits[-1]
        generated, margins, decode = [], [], []
        for t in range(S):
            top = torch.topk(row.float(), 2).values
            margins.append(float(top[0] - top[1]))
            nxt = int(torch.argmax(row))
            generated.append(nxt)
            out = model(input_ids=torch.tensor([[nxt]], device=dev), past_key_values=past,
                        attention_mask=torch.ones(1, L + t + 1, dtype=torch.long, device=dev), use_cache=True, return_dict=True)
            past = out.past_key_values
            row = out.logits[0, -1]
            decode.append(f32(row))
    for h in hooks:
        h.remove()
    for name, a in traced.items():
        if not np.isfinite(a).all():
            raise SystemExit(f"{name}: non-finite values in the reference output")
    print(f"forward done in {time.time() - t0:.1f} s; ntk_alpha {model.transformer.rotary_emb._ntk_alpha_cached}", flush=True)
    for name, a in sorted(traced.items()):
        print(f"  {name:16s} shape {list(a.shape)} rms {np.sqrt(np.mean(a.astype(np.float64) ** 2)):.4g} max {np.abs(a).max():.4g}")
    print(f"  prefill rms {np.sqrt(np.mean(prefill.astype(np.float64) ** 2)):.4g}; generated {generated}; margins {[round(m, 4) for m in margins]}")

    import msgpack
    os.makedirs(args.out, exist_ok=True)
    common = {"version": VERSION, "source": prompt.get("source", ""), "checkpoint": prompt.get("checkpoint", {}),
              "reference": f"upstream modeling_qwen.py/visual.py, torch {torch.__version__}, float32 on {dev.type}, TF32 off"}
    llm = {"meta": {"kind": "llm", "seq_len": L, "greedy_steps": S, "margins": margins, "images": prompt["images"], **common},
           "tensors": {"input_ids": tensor(np.array(ids), "i32"), "prefill_positions": tensor(np.array(pos), "i32"),
                       "prefill_logits": tensor(prefill, "f32"), "generated_ids": tensor(np.array(generated), "i32"),
                       "decode_logits": tensor(np.stack(decode), "f32"),
                       **{k: tensor(v, "f32") for k, v in traced.items() if k.startswith("llm.")}}}
    write(os.path.join(args.out, f"llm-{prompt['name']}.msgpack"), llm)

    image = prompt["images"][0]
    img = Image.open(os.path.join(args.images, image)).convert("RGB")
    pixels = np.asarray(visual.image_transform.transforms[0](img), dtype=np.uint8)  # the Resize step
    vis_names = ["vit.ln_pre"] + [f"vit.block.{k}" for k in prompt["vision_blocks"]] + ["vit.resampler", "image_embeds"]
    part, size, k = {}, 0, 1
    base = os.path.splitext(image)[0]
    meta = {"kind": "vision", "image": image, "image_size": list(img.size), **common}
    for name in vis_names + [None]:
        nbytes = traced[name].nbytes if name else 0
        if name is None or (part and size + nbytes > 15 * 2**20):
            write(os.path.join(args.out, f"vision-{base}.part{k}.msgpack"),
                  {"meta": {**meta, "part": k}, "tensors": {"pixels_u8": tensor(pixels, "u8"), **part}})
            part, size, k = {}, 0, k + 1
        if name:
            part[name] = tensor(traced[name], "f32")
            size += nbytes


def write(path, obj):
    import msgpack
    with open(path, "wb") as fh:
        fh.write(msgpack.packb(obj, use_bin_type=True))
    print(f"wrote {path} ({os.path.getsize(path)} bytes)", flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--upstream", required=True)
    p.add_argument("--images", required=True)
    p.add_argument("--prompt", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--checkpoint")
    p.add_argument("--plan")
    p.add_argument("--write")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda")
    p.add_argument("--work", default="/tmp/qwen-goldens-work")
    args = p.parse_args()
    args.images = os.path.abspath(args.images)
    args.out = os.path.abspath(args.out)
    if args.plan:
        if not args.write:
            raise SystemExit("--plan needs --write DIR")
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import pcg_checkpoint
        t0 = time.time()
        plan = json.load(open(args.plan))
        shas = pcg_checkpoint.write_checkpoint(plan, args.write, args.seed)
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "sha256.txt"), "w") as fh:
            for file, sha, nbytes in shas:
                line = f"{sha}  {file}  {nbytes}"
                print(line)
                fh.write(line + "\n")
        print(f"checkpoint written in {time.time() - t0:.1f} s", flush=True)
    elif not args.checkpoint:
        raise SystemExit("give --checkpoint DIR or --plan PLAN.json --write DIR")
    run(args)


if __name__ == "__main__":
    main()
