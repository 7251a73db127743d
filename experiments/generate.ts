// `deno task generate`: chat with a model directory, streaming the reply.
import { generate } from "../qwen/generate.ts";
import type { ChatMessage } from "../qwen/tokenizer.ts";
import { intFlag, parseFlags, runCommand, UserError } from "./cli.ts";
import { checkIds, modelFlags, openDevice, openModel, resolveModel } from "./model.ts";

const spec = {
  name: "generate",
  summary:
    "Generate a reply with a KV cache, applying the model's chat template, and stream it to stdout.",
  flags: {
    ...modelFlags,
    prompt: { type: "string", metavar: "TEXT", help: "the user message" },
    system: {
      type: "string",
      metavar: "TEXT",
      help: "a system message (default: the template's own)",
    },
    raw: { type: "boolean", help: "continue the prompt as plain text, without the chat template" },
    "prompt-ids": {
      type: "string",
      metavar: "IDS",
      help: "comma-separated token ids instead of --prompt (no tokenizer needed)",
    },
    "max-new-tokens": { type: "number", default: 128, help: "stop after this many new tokens" },
    temperature: { type: "number", default: 0, help: "sampling temperature; 0 = greedy" },
    "top-k": {
      type: "number",
      default: 0,
      help: "sample among the k most likely tokens (0 = all)",
    },
    "top-p": { type: "number", default: 1, help: "nucleus sampling mass (1 = all)" },
    seed: { type: "number", default: 0, help: "sampling seed" },
  },
  epilog: `Example:
  deno task generate --model DIR --prompt "Write a sentence about rivers." --max-new-tokens 64`,
} as const;

await runCommand("generate", async () => {
  const flags = parseFlags(spec, Deno.args);
  if (!flags.model) throw new UserError("--model DIR is required (see --help)", 2);
  if (flags.prompt === undefined && flags["prompt-ids"] === undefined) {
    throw new UserError("give --prompt TEXT or --prompt-ids IDS (see --help)", 2);
  }
  const maxNewTokens = intFlag("max-new-tokens", flags["max-new-tokens"], 1);
  const { dir } = await resolveModel("generate", flags.model);
  const device = await openDevice(flags.backend);
  const { model, tokenizer } = await openModel(dir, device);
  let promptIds: number[];
  if (flags["prompt-ids"] !== undefined) {
    promptIds = flags["prompt-ids"].split(",").map((s) => Number(s.trim()));
    checkIds(promptIds, model.config.vocabSize, "--prompt-ids");
  } else {
    if (!tokenizer) throw new UserError(`${dir}: no tokenizer.json; use --prompt-ids`);
    let text = flags.prompt!;
    if (!flags.raw) {
      const messages: ChatMessage[] = [];
      if (flags.system !== undefined) messages.push({ role: "system", content: flags.system });
      messages.push({ role: "user", content: text });
      text = tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true });
    }
    promptIds = tokenizer.encode(text);
  }
  if (promptIds.length === 0) throw new UserError("the prompt is empty", 2);
  const stopIds = [
    ...[model.config.eosTokenId ?? []].flat(),
    ...["<|im_end|>", "<|endoftext|>"].map((t) => tokenizer?.tokenId(t)).filter((x) =>
      x !== undefined
    ),
  ];
  const out: number[] = [];
  let shown = "";
  const encoder = new TextEncoder();
  const start = performance.now();
  for await (
    const id of generate(model, promptIds, {
      maxNewTokens,
      stopIds,
      temperature: flags.temperature,
      topK: flags["top-k"],
      topP: flags["top-p"],
      seed: flags.seed,
    })
  ) {
    out.push(id);
    if (!tokenizer) {
      await Deno.stdout.write(encoder.encode(`${out.length > 1 ? " " : ""}${id}`));
      continue;
    }
    // decode everything so far and print the new suffix; hold back an incomplete UTF-8 tail
    const text = tokenizer.decode(out);
    if (text.endsWith("\uFFFD")) continue;
    await Deno.stdout.write(encoder.encode(text.slice(shown.length)));
    shown = text;
  }
  if (tokenizer && tokenizer.decode(out) !== shown) {
    await Deno.stdout.write(encoder.encode(tokenizer.decode(out).slice(shown.length)));
  }
  const seconds = (performance.now() - start) / 1000;
  console.log();
  console.error(
    `generate: ${out.length} tokens in ${seconds.toFixed(1)} s (${
      (out.length / seconds).toFixed(1)
    } tokens/s)`,
  );
});
