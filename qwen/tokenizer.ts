// Tokenizer and chat template from a Hugging Face model directory (tokenizer.json +
// tokenizer_config.json), through @huggingface/tokenizers and @huggingface/jinja, so a
// model's own files define both (DESIGN 3.3).
import { Template } from "@huggingface/jinja";
import { Tokenizer } from "@huggingface/tokenizers";
import { readJsonFile } from "./files.ts";

/** One chat message. Tool calls and other fields pass through to the template. */
export interface ChatMessage {
  role: string;
  content: string;
  [key: string]: unknown;
}

/** Options of `applyChatTemplate`. */
export interface ChatTemplateOptions {
  /** Append the assistant header (default false, as DESIGN 3.3). */
  addGenerationPrompt?: boolean;
  /** Tool (function) definitions for templates that support them. */
  tools?: readonly unknown[];
}

/** A model directory's tokenizer and chat template. */
export class QwenTokenizer {
  readonly #tokenizer: Tokenizer;
  readonly #template: Template | null;
  readonly #config: Record<string, unknown>;
  readonly #vocab: Map<string, number>;

  private constructor(
    tokenizerJson: Record<string, unknown>,
    config: Record<string, unknown>,
    readonly dir: string,
  ) {
    this.#tokenizer = new Tokenizer(tokenizerJson, config);
    this.#config = config;
    const template = config.chat_template;
    this.#template = typeof template === "string" ? new Template(template) : null;
    this.#vocab = new Map();
    const model = tokenizerJson.model as { vocab?: Record<string, number> } | undefined;
    for (const [tok, id] of Object.entries(model?.vocab ?? {})) this.#vocab.set(tok, id);
    for (
      const t of (tokenizerJson.added_tokens as { id: number; content: string }[] | undefined) ?? []
    ) {
      this.#vocab.set(t.content, t.id);
    }
  }

  /** Load `dir/tokenizer.json` and `dir/tokenizer_config.json`. */
  static async load(dir: string): Promise<QwenTokenizer> {
    const read = async (name: string) =>
      await readJsonFile(`${dir}/${name}`) as Record<string, unknown>;
    return new QwenTokenizer(
      await read("tokenizer.json"),
      await read("tokenizer_config.json"),
      dir,
    );
  }

  /** Token ids of `text`; nothing is added (Qwen adds no BOS/EOS). */
  encode(text: string): number[] {
    return this.#tokenizer.encode(text, { add_special_tokens: false }).ids;
  }

  /** Text of token ids, special tokens kept, no clean-up of spaces. */
  decode(ids: readonly number[], skipSpecialTokens = false): string {
    if (ids.length === 0) return "";
    return this.#tokenizer.decode([...ids], {
      skip_special_tokens: skipSpecialTokens,
      clean_up_tokenization_spaces: false,
    });
  }

  /** The id of a token string (e.g. `<|im_end|>`), or undefined. */
  tokenId(token: string): number | undefined {
    return this.#vocab.get(token);
  }

  /** Number of token ids (vocabulary plus added tokens). */
  get size(): number {
    let max = -1;
    for (const id of this.#vocab.values()) max = Math.max(max, id);
    return max + 1;
  }

  /** True when the directory has a chat template. */
  get hasChatTemplate(): boolean {
    return this.#template !== null;
  }

  /** Render messages with the model's chat template (HF `apply_chat_template`, tokenize=False). */
  applyChatTemplate(messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): string {
    if (!this.#template) throw new Error(`${this.dir}/tokenizer_config.json: no chat_template`);
    const special = (key: string) => {
      const v = this.#config[key];
      if (typeof v === "string") return v;
      if (v && typeof v === "object" && "content" in v) {
        return String((v as { content: unknown }).content);
      }
      return "";
    };
    const context: Record<string, unknown> = {
      messages,
      add_generation_prompt: options.addGenerationPrompt ?? false,
      bos_token: special("bos_token"),
      eos_token: special("eos_token"),
      pad_token: special("pad_token"),
      unk_token: special("unk_token"),
    };
    if (options.tools !== undefined) context.tools = options.tools;
    return this.#template.render(context);
  }
}
