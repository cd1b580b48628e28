// The whole Qwen-VL-Chat model: config, vision tower, decoder (modeling_qwen.py QWenLMHeadModel).
//
//   ids [L] ──embed──► x [L, C] ──(image spans: rows start+1..end−1 ← vision embeddings)──►
//   decoder prefill ──► logits; then decodeStep(id) per generated token with the KV cache.
//
// Image spans follow the reference (modeling_qwen.py:554-563, 656-657): `<img>` = image_start_id,
// `</img>` = +1; the positions strictly between the two (path bytes and `<imgpad>` padding, 256 of
// them) are overwritten by the image's 256 embeddings. `<img>` and `</img>` keep their own
// token embeddings.
//
// API
//   class QwenVL
//     static async load(dir, { backend, onProgress? }): Promise<QwenVL>
//     static async loadFrom(source: CheckpointSource, options): Promise<QwenVL>   any source (src/io/source.ts: fetched bytes)
//     readonly dir, config: ModelConfig, generation: GenerationDefaults | null, decoder, vision, backend
//     imageStartId, maxContext, vocabSize
//     async encodeImage(bytes, name?, { maxMegapixels?, trace? }?): Promise<Tensor>   file bytes → [256, C]
//     encodePixels(pixels: Float32Array [3,S,S], trace?): Tensor   normalised pixels → [256, C]
//     imageSpans(ids): ImageSpan[]
//     embedInputs(ids, imageEmbeds: Tensor[]): Tensor [L, C]
//     newCache(capacity?): KvCache;  disposeCache(cache)
//     async prefill(ids, cache, { imageEmbeds?, logitsFor?, onBlock? }): Float32Array [R·V]
//     async decodeStep(id, cache): Float32Array [V]
//     static cacheBytesPerToken(config): number
import type { Backend, Tensor } from "../ops/backend.js";
import { VarBuilder } from "../io/var-builder.js";
import type { ProgressFn } from "../io/checkpoint.js";
import { DirectorySource } from "../io/directory.js";
import type { CheckpointSource } from "../io/source.js";
import { loadGenerationDefaultsFrom, type GenerationDefaults, type ModelConfig, type QwenConfig } from "../config.js";
import { VisionTower, type TraceFn } from "./vision.js";
import { KvCache, QwenDecoder, type ForwardOptions } from "./qwen.js";
import { loadImage } from "../image/decode.js";
import { findImageSpans, type ImageSpan } from "../tokenizer/image-spans.js";

export interface QwenVLLoadOptions {
  readonly backend: Backend;
  /** Called while tensor data is read (bytes done, bytes total). */
  readonly onProgress?: ProgressFn;
}

export interface PrefillOptions extends ForwardOptions {
  /** One [256, C] embedding per image span of the prompt, in order. */
  readonly imageEmbeds?: readonly Tensor[];
}

export class QwenVL {
  private constructor(
    readonly dir: string,
    readonly config: ModelConfig,
    /** generation_config.json, or null when the checkpoint has none. */
    readonly generation: GenerationDefaults | null,
    readonly decoder: QwenDecoder,
    readonly vision: VisionTower,
    readonly backend: Backend,
  ) {}

  /** Loads config.json, generation_config.json (optional) and every weight from `dir`. */
  static async load(dir: string, options: QwenVLLoadOptions): Promise<QwenVL> {
    return QwenVL.loadFrom(new DirectorySource(dir), options);
  }

  /** The same from any checkpoint source; `dir` becomes the source's label. */
  static async loadFrom(source: CheckpointSource, options: QwenVLLoadOptions): Promise<QwenVL> {
    const dir = source.label;
    const { vb, config, checkpoint } = VarBuilder.openSource(source, { onProgress: options.onProgress });
    try {
      const llm = config.llm;
      if (config.visual.outputDim !== llm.hiddenSize) {
        throw new Error(`${source.path("config.json")}: visual.output_dim ${config.visual.outputDim} must equal hidden_size ${llm.hiddenSize} (image embeddings replace token embeddings)`);
      }
      if (config.visual.imageStartId + 2 >= llm.vocabSize) {
        throw new Error(`${source.path("config.json")}: visual.image_start_id ${config.visual.imageStartId} (+2 for <imgpad>) is outside vocab_size ${llm.vocabSize}`);
      }
      const generation = loadGenerationDefaultsFrom(source);
      const vision = VisionTower.load(vb, config.visual, options.backend);
      const decoder = QwenDecoder.load(vb, llm, options.backend);
      return new QwenVL(dir, config, generation, decoder, vision, options.backend);
    } finally {
      checkpoint.close();
    }
  }

  /** KV cache bytes per token for a config: 2 · layers · heads · kv_channels · 4. */
  static cacheBytesPerToken(llm: QwenConfig): number {
    return KvCache.bytesPerToken(llm);
  }

  get imageStartId(): number {
    return this.config.visual.imageStartId;
  }

  get maxContext(): number {
    return this.decoder.maxContext;
  }

  get vocabSize(): number {
    return this.config.llm.vocabSize;
  }

  /**
   * Image file bytes (JPEG/PNG/...) → [256, C]: decoded on the host (visual.py:422-423,
   * `Image.open(...).convert("RGB")`), resized and normalised by the backend (visual.py:354-360;
   * on WebGPU on the device, so the host's share is the decode), then the vision tower.
   * options.maxMegapixels bounds the declared image size (src/image/limits.ts; default Pillow's);
   * options.trace sees "pixels" and the vision tower's named intermediates (VisionTower.encode).
   */
  async encodeImage(bytes: Uint8Array, name = "image", options: { maxMegapixels?: number; trace?: TraceFn } = {}): Promise<Tensor> {
    const img = await loadImage(bytes, { name, maxMegapixels: options.maxMegapixels });
    const pixels = this.backend.imagePixels(img.rgb, img.width, img.height, this.config.visual.imageSize);
    try {
      return this.vision.encode(pixels, options.trace);
    } finally {
      this.backend.release(pixels);
    }
  }

  /** Normalised pixels [3, S, S] → [256, C]. */
  encodePixels(pixels: Float32Array, trace?: TraceFn): Tensor {
    return this.vision.encode(pixels, trace);
  }

  /** The image spans of a prompt, by this checkpoint's image_start_id. */
  imageSpans(ids: ArrayLike<number>): ImageSpan[] {
    return findImageSpans(ids, this.imageStartId);
  }

  /**
   * Token embeddings of `ids` with each image span's inner positions replaced by that image's
   * embeddings (modeling_qwen.py:656-657: `hidden_states[i][a + 1 : b] = images[idx]`).
   */
  embedInputs(ids: ArrayLike<number>, imageEmbeds: readonly Tensor[] = []): Tensor {
    const spans = this.imageSpans(ids);
    if (spans.length !== imageEmbeds.length) {
      throw new Error(`embedInputs: the prompt has ${spans.length} image span(s) but ${imageEmbeds.length} image embedding(s) were given`);
    }
    const x = this.decoder.embed(ids); // x: [L, C]
    const C = this.config.llm.hiddenSize;
    const be = this.backend;
    spans.forEach((s, i) => {
      const e = imageEmbeds[i]; // e: [256, C]
      const inner = s.end - s.start - 1;
      if (e.shape.length !== 2 || e.shape[1] !== C || e.shape[0] !== inner) {
        throw new Error(`embedInputs: image ${i} ("${s.path}") spans ${inner} positions (${s.start + 1}..${s.end - 1}) but its embeddings are [${e.shape}], expected [${inner}, ${C}]`);
      }
      be.writeRows(x, s.start + 1, e);
    });
    return x;
  }

  /** A KV cache for up to `capacity` tokens (it grows if needed, up to maxContext). */
  newCache(capacity?: number): KvCache {
    return this.decoder.newCache(capacity);
  }

  disposeCache(cache: KvCache): void {
    cache.dispose();
  }

  /**
   * Runs the prompt `ids` into an empty `cache`; returns logits [R·V] for the R rows
   * options.logitsFor picks (default: the last), read back from the backend. Image spans need
   * options.imageEmbeds.
   */
  async prefill(ids: ArrayLike<number>, cache: KvCache, options: PrefillOptions = {}): Promise<Float32Array> {
    if (cache.length !== 0) throw new Error(`prefill: the cache already holds ${cache.length} tokens; use a fresh cache (or cache.reset())`);
    if (ids.length === 0) throw new Error("prefill: empty prompt");
    return this.run(this.embedInputs(ids, options.imageEmbeds ?? []), cache, options);
  }

  /** Feeds one token after the cache; returns its logits [V]. Image tags here are plain embeddings. */
  async decodeStep(id: number, cache: KvCache): Promise<Float32Array> {
    if (cache.length === 0) throw new Error("decodeStep: the cache is empty; run prefill first");
    return this.run(this.decoder.embed([id]), cache, {});
  }

  /** Decoder forward on embeddings x, then the one read-back of the step: the logits. */
  private async run(x: Tensor, cache: KvCache, options: ForwardOptions): Promise<Float32Array> {
    const be = this.backend;
    try {
      const logits = this.decoder.forward(x, cache, options);
      try {
        return await be.read(logits);
      } finally {
        be.release(logits);
      }
    } finally {
      be.release(x);
    }
  }
}
