/**
 * The strict JSON request body every HTTP edge reads (check API, admin API on the Worker and the
 * Lambda): media type, a byte cap enforced while reading, UTF-8, JSON, and no repeated member
 * names. Each caller turns a refusal into its own problem response, so their answers stay theirs.
 */
import { hasDuplicateMemberName } from '../token/json.ts';

/** Why a body was refused, in the order the checks run. */
export type JsonBodyRefusal =
  | 'unsupported_media_type'
  | 'too_large'
  | 'not_json'
  | 'duplicate_member_name';

export type JsonBodyResult =
  | { readonly ok: true; readonly value: unknown }
  | { readonly ok: false; readonly refusal: JsonBodyRefusal };

export interface JsonBodySource {
  readonly headers: Headers;
  /** The body as UTF-8 text, at most `maxBytes` (null when larger); throws on invalid UTF-8. */
  readonly body: (maxBytes: number) => Promise<string | null>;
}

export interface JsonBodyOptions {
  /** Largest body accepted, bytes; a larger declared or actual size is `too_large`. */
  readonly maxBytes: number;
  /** The Content-Type values accepted (each edge has kept its own since it shipped). */
  readonly mediaType: RegExp;
}

/** Reads and parses a JSON body, or says which check refused it. Never throws for bad input. */
export async function readJsonBody(
  source: JsonBodySource,
  options: JsonBodyOptions,
): Promise<JsonBodyResult> {
  const refuse = (refusal: JsonBodyRefusal): JsonBodyResult => ({ ok: false, refusal });
  if (!options.mediaType.test(source.headers.get('content-type') ?? '')) {
    return refuse('unsupported_media_type');
  }
  // A declared size over the cap is refused before a byte is read.
  const declared = Number(source.headers.get('content-length') ?? '0');
  if (declared > options.maxBytes) return refuse('too_large');
  let text: string | null;
  try {
    text = await source.body(options.maxBytes);
  } catch {
    return refuse('not_json'); // not UTF-8
  }
  if (text === null) return refuse('too_large');
  let value: unknown;
  try {
    value = JSON.parse(text) as unknown;
  } catch {
    return refuse('not_json');
  }
  // JSON.parse keeps the last of two equal keys; a WAF or audit log in front may read the first.
  if (hasDuplicateMemberName(text)) return refuse('duplicate_member_name');
  return { ok: true, value };
}

/**
 * A body as UTF-8 text, read with a cap: at most `max` bytes are ever buffered, whatever the
 * Content-Length says (a chunked body has none). Null when larger; throws on invalid UTF-8.
 */
export async function readCappedText(
  stream: ReadableStream<Uint8Array> | null,
  max: number,
): Promise<string | null> {
  if (stream === null) return '';
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      await reader.cancel().catch(() => undefined);
      return null;
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes);
}
