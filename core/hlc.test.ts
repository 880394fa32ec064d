import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  compareHlc,
  formatHlc,
  type Hlc,
  HlcError,
  MAX_COUNTER,
  parseHlc,
  receiveHlc,
  tickHlc,
} from "./hlc.ts";

const node = "6f1c2d9e-4b7a-4f1e-9c3d-2a5b8e7f0a11";
const hlcArb = fc.record({
  wall: fc.integer({ min: 0, max: 999_999_999_999_999 }),
  counter: fc.integer({ min: 0, max: MAX_COUNTER }),
  node: fc.constantFrom(node, "a", "device-2", "Z_9"),
});

describe("HLC string form", () => {
  it("pads wall to 15 digits and counter to 6, as DESIGN.md shows", () => {
    expect(formatHlc({ wall: 1_763_800_000_000, counter: 3, node })).toBe(
      `001763800000000:000003:${node}`,
    );
  });

  it("parses what it formats", () => {
    fc.assert(
      fc.property(hlcArb, (h) => {
        expect(parseHlc(formatHlc(h))).toEqual(h);
      }),
    );
  });

  it("sorts byte-wise in (wall, counter, node) order", () => {
    fc.assert(
      fc.property(hlcArb, hlcArb, (a, b) => {
        const expected =
          a.wall - b.wall ||
          a.counter - b.counter ||
          (a.node < b.node ? -1 : a.node > b.node ? 1 : 0);
        expect(Math.sign(compareHlc(formatHlc(a), formatHlc(b)))).toBe(Math.sign(expected));
      }),
    );
  });

  it.each([
    "",
    "1763800000000:000003:x",
    "001763800000000:3:x",
    "001763800000000:000003:",
    "001763800000000:000003:bad node",
    `001763800000000:000003:${"n".repeat(65)}`,
  ])("refuses %j", (text) => {
    expect(parseHlc(text)).toBeUndefined();
  });
});

describe("HLC clock rules (Kulkarni et al.)", () => {
  it("a local event is always later than the one before it", () => {
    fc.assert(
      fc.property(hlcArb, fc.integer({ min: 0, max: 999_999_999_999_999 }), (prev, now) => {
        fc.pre(prev.counter < MAX_COUNTER);
        const next = tickHlc(prev, now);
        expect(compareHlc(formatHlc(next), formatHlc(prev))).toBe(1);
        expect(next.wall).toBe(Math.max(prev.wall, now));
      }),
    );
  });

  it("after receiving, the clock is later than both its own last stamp and the remote one", () => {
    fc.assert(
      fc.property(
        hlcArb,
        hlcArb,
        fc.integer({ min: 0, max: 999_999_999_999_999 }),
        (prev, remote, now) => {
          fc.pre(prev.counter < MAX_COUNTER && remote.counter < MAX_COUNTER);
          const next = receiveHlc(prev, remote, now);
          const asLocal = (h: Pick<Hlc, "wall" | "counter">) =>
            formatHlc({ ...h, node: prev.node });
          expect(compareHlc(asLocal(next), asLocal(prev))).toBe(1);
          expect(compareHlc(asLocal(next), asLocal(remote))).toBe(1);
        },
      ),
    );
  });

  it("a slow clock catches up with the server time it receives", () => {
    const slow: Hlc = { wall: 1_000, counter: 5, node };
    const next = receiveHlc(slow, { wall: 9_000, counter: 0 }, 1_200);
    expect(next).toEqual({ wall: 9_000, counter: 1, node });
    expect(tickHlc(next, 1_300)).toEqual({ wall: 9_000, counter: 2, node });
  });

  it("refuses to overflow the counter rather than break the order", () => {
    expect(() => tickHlc({ wall: 5, counter: MAX_COUNTER, node }, 5)).toThrow(HlcError);
  });
});
