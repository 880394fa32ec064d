import { readFile } from "node:fs/promises";

/**
 * Reads a saved event and fills its `<placeholder>`s (see events/README.md).
 * Values are JSON-escaped, so they are safe inside the nested body strings.
 */
export async function loadEvent<T>(path: string, values: Record<string, string> = {}): Promise<T> {
  let text = await readFile(path, "utf8");
  for (const [name, value] of Object.entries(values)) {
    const escaped = JSON.stringify(JSON.stringify(value).slice(1, -1)).slice(1, -1);
    text = text.replaceAll(`<${name}>`, escaped);
  }
  return JSON.parse(text) as T;
}
