// Supervised fine-tuning examples from chat rows (the paper's train_ubmoe.py): the
// conversation rendered by the model's chat template; the loss counts only the assistant
// turns' tokens (their content and the closing `<|im_end|>`), every other token is labelled
// −100 (ignored).
import { ignoreIndex } from "../nn/losses.ts";
import type { ChatMessage, QwenTokenizer } from "../qwen/tokenizer.ts";

/** Token ids and labels of one conversation (labels −100 outside assistant turns). */
export interface SftExample {
  ids: number[];
  labels: number[];
}

/** The end-of-turn marker of Qwen's chat template. */
const endOfTurn = "<|im_end|>";

/**
 * The SFT example of a conversation, or null when it has no assistant turn. Each assistant
 * turn's text is located by rendering the conversation up to it with the generation prompt:
 * the full rendering continues that prefix with the turn's content and `<|im_end|>`.
 */
export function sftExample(
  tokenizer: QwenTokenizer,
  messages: readonly ChatMessage[],
  maxTokens: number,
): SftExample | null {
  const full = tokenizer.applyChatTemplate(messages);
  const spans: [number, number][] = [];
  messages.forEach((m, i) => {
    if (m.role !== "assistant") return;
    const prefix = tokenizer.applyChatTemplate(messages.slice(0, i), { addGenerationPrompt: true });
    const turn = m.content + endOfTurn;
    if (!full.startsWith(prefix) || !full.startsWith(turn, prefix.length)) {
      throw new Error(
        `chat template: assistant turn ${i} is not rendered as prefix + content + ${endOfTurn}`,
      );
    }
    spans.push([prefix.length, prefix.length + turn.length]);
  });
  if (spans.length === 0) return null;
  const ids: number[] = [], labels: number[] = [];
  let at = 0;
  const push = (text: string, learn: boolean) => {
    if (text === "") return;
    const piece = tokenizer.encode(text);
    ids.push(...piece);
    labels.push(...(learn ? piece : piece.map(() => ignoreIndex)));
  };
  for (const [start, end] of spans) {
    push(full.slice(at, start), false);
    push(full.slice(start, end), true);
    at = end;
  }
  push(full.slice(at), false);
  if (ids.length > maxTokens) {
    ids.length = maxTokens;
    labels.length = maxTokens;
  }
  return labels.some((l) => l !== ignoreIndex) ? { ids, labels } : null;
}
