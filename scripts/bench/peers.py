"""Peer figures for issue 15, on the shapes `lora bench` uses (Sources/Service/ModelBenchmark.swift), one
JSON line per figure on stdout. Run by scripts/bench/peers.sh inside a virtualenv outside the repo
(requirements-peers.txt beside this file); never by the tests.

  peers.py llama-prefill GGUF      llama-cpp-python: a 250-token prompt evaluated into a fresh context
  peers.py llama-decode GGUF       llama-cpp-python: 128 greedy tokens after a 16-token prompt
  peers.py peft-train HF_DIR       transformers + PEFT, fp32 base, LoRA r16 all-linear, dropout 0
  peers.py bnb-train HF_DIR        the same over a bitsandbytes NF4 base (double quantization, fp32 compute)
  peers.py export-hf GGUF OUT_DIR  the GGUF dequantized to an fp32 transformers checkpoint (for the two above
                                   and for `lora bench train --quant nf4`)

Each figure: warm-up, then the median of REPS (3) repetitions; every peer runs with THREADS (2) threads.
Token ids are the list `ModelBenchmark.tokenIds` makes: 1 + ((i + offset) * 7919) % (V - 1).
"""
import json
import os
import resource
import statistics
import sys
import time

THREADS = int(os.environ.get("THREADS", "2"))
REPS = int(os.environ.get("REPS", "3"))
BATCH, SEQ, RANK, ALPHA = 4, 256, 16, 32
PROMPT, DECODE_PROMPT, NEW = 250, 16, 128


def token_ids(count, vocab, offset=0):
    return [1 + (((i + offset) * 7919) % (vocab - 1)) for i in range(count)]


def peak_rss_bytes():
    # VmHWM of this process (ru_maxrss is inherited across exec on Linux, as the Swift side notes).
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def emit(name, unit, samples, peer, **extra):
    print(json.dumps({"name": name, "unit": unit, "median": statistics.median(samples), "samples": samples,
                      "peer": peer, "threads": THREADS, "peak_rss_bytes": peak_rss_bytes(), **extra}), flush=True)


def measure(body):
    body()  # warm-up
    return [body() for _ in range(REPS)]


def llama(path):
    from llama_cpp import Llama
    return Llama(model_path=path, n_ctx=512, n_batch=512, n_threads=THREADS, n_threads_batch=THREADS, verbose=False)


def llama_prefill(path):
    import llama_cpp
    llm = llama(path)
    ids = token_ids(PROMPT, llm.n_vocab())

    def once():
        llm.reset()
        llm._ctx.kv_cache_clear() if hasattr(llm._ctx, "kv_cache_clear") else None
        t0 = time.perf_counter()
        llm.eval(ids)   # one llama_decode of the whole prompt (n_batch 512), last position's logits
        return PROMPT / (time.perf_counter() - t0)
    emit("prefill_tokens_per_s", "tokens/s", measure(once), f"llama-cpp-python {llama_cpp.__version__}")


def llama_decode(path):
    import llama_cpp
    import numpy as np
    llm = llama(path)
    ids = token_ids(DECODE_PROMPT, llm.n_vocab())

    def once():
        llm.reset()
        llm._ctx.kv_cache_clear() if hasattr(llm._ctx, "kv_cache_clear") else None
        llm.eval(ids)
        nxt = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        t0 = time.perf_counter()
        for _ in range(NEW):   # greedy, end of sequence ignored (as `lora bench decode`)
            llm.eval([nxt])
            nxt = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        return NEW / (time.perf_counter() - t0)
    emit("decode_tokens_per_s", "tokens/s", measure(once), f"llama-cpp-python {llama_cpp.__version__}")


def export_hf(gguf, out):
    import shutil
    import tempfile
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copy(gguf, os.path.join(tmp, os.path.basename(gguf)))
        model = AutoModelForCausalLM.from_pretrained(tmp, gguf_file=os.path.basename(gguf), dtype=torch.float32)
        tok = AutoTokenizer.from_pretrained(tmp, gguf_file=os.path.basename(gguf))
    # The weights are dequantized fp32 tensors; what marks the model "quantized with gguf" (and refuses
    # to save it) is only the loader's bookkeeping.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tok.save_pretrained(out)


def train(hf_dir, quantized):
    import torch
    import transformers
    import peft
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    if quantized:
        import bitsandbytes
        from transformers import BitsAndBytesConfig
        from peft import prepare_model_for_kbit_training
        q = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=torch.float32)
        model = AutoModelForCausalLM.from_pretrained(hf_dir, quantization_config=q, device_map="cpu", dtype=torch.float32)
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        peer = f"PEFT {peft.__version__} + bitsandbytes {bitsandbytes.__version__} NF4, transformers {transformers.__version__}, torch {torch.__version__}"
    else:
        model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32)
        peer = f"PEFT {peft.__version__} fp32, transformers {transformers.__version__}, torch {torch.__version__}"
    model = get_peft_model(model, LoraConfig(r=RANK, lora_alpha=ALPHA, lora_dropout=0.0, target_modules="all-linear",
                                             task_type="CAUSAL_LM"))
    model.train()
    vocab = model.config.vocab_size
    ids = torch.tensor([token_ids(SEQ, vocab, offset=b * SEQ) for b in range(BATCH)])
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4)

    def once():
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        opt.step()
        return BATCH * SEQ / (time.perf_counter() - t0)
    emit(("bnb" if quantized else "peft") + "_train_tokens_per_s", "tokens/s", measure(once), peer)


def main():
    what, args = sys.argv[1], sys.argv[2:]
    if what == "llama-prefill":
        llama_prefill(*args)
    elif what == "llama-decode":
        llama_decode(*args)
    elif what == "peft-train":
        train(args[0], quantized=False)
    elif what == "bnb-train":
        train(args[0], quantized=True)
    elif what == "export-hf":
        export_hf(*args)
    else:
        sys.exit(f"peers.py: unknown figure {what!r}")


if __name__ == "__main__":
    main()
