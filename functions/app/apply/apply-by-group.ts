import type { Db } from "../../adapters/db/db.ts";
import { type ApplyItem, applyChanges } from "./apply-changes.ts";

/** One message of a FIFO batch: its id, its message group (report), and its change or why it is unreadable. */
export interface GroupedMessage {
  id: string;
  group: string;
  item: ApplyItem | Error;
}

/**
 * Applies a FIFO batch in one transaction; if that fails, applies its
 * changes again one transaction each, in order. A message that fails (or
 * cannot be read) fails every later message of its group, which keeps each
 * report's order; every other group goes ahead. Returns the error of each
 * message that failed, by message id.
 */
export async function applyByGroup(
  db: Db,
  messages: GroupedMessage[],
  now: () => number,
  onBatchFailure?: (error: unknown) => void,
): Promise<Map<string, unknown>> {
  const failures = new Map<string, unknown>();
  const failedGroups = new Set<string>();
  const fail = (message: GroupedMessage, error: unknown) => {
    failures.set(message.id, error);
    failedGroups.add(message.group);
  };
  const applicable: (GroupedMessage & { item: ApplyItem })[] = [];
  for (const message of messages) {
    if (failedGroups.has(message.group))
      fail(message, new Error("an earlier message of its group failed"));
    else if (message.item instanceof Error) fail(message, message.item);
    else applicable.push(message as GroupedMessage & { item: ApplyItem });
  }
  try {
    await applyChanges(
      db,
      applicable.map((m) => m.item),
      now,
    );
  } catch (batchError) {
    onBatchFailure?.(batchError);
    for (const message of applicable) {
      if (failedGroups.has(message.group)) {
        fail(message, new Error("an earlier message of its group failed"));
        continue;
      }
      await applyChanges(db, [message.item], now).catch((error) => fail(message, error));
    }
  }
  return failures;
}
