import { formatHlc, type Hlc, parseHlc, receiveHlc, tickHlc } from "../core/hlc.ts";
import type { Settings } from "./settings.ts";

/**
 * This device's hybrid logical clock, kept in its settings. Stamps follow
 * wall time corrected by the offset to the cloud's clock learnt on the last
 * pull, so a device whose clock runs fast or slow still stamps near server
 * time (the cloud refuses stamps more than 5 minutes ahead).
 */
export class DeviceClock {
  constructor(
    private readonly settings: Settings,
    private readonly now: () => number,
    private readonly deviceId: () => string,
  ) {}

  /** The last stamp given. */
  current(): Hlc {
    const text = this.settings.get("hlc");
    return (text && parseHlc(text)) || { wall: 0, counter: 0, node: this.deviceId() };
  }

  wallNow(): number {
    return this.now() + (this.settings.get("clockOffsetMs") ?? 0);
  }

  /**
   * The next stamp, past every stamp in `seen`: an edit made after seeing a
   * value must win over it (HLC receive rule), even when the device that
   * wrote it has a faster clock. The caller stores it with `advance`.
   */
  next(seen: (string | undefined)[]): Hlc {
    let clock = this.current();
    const now = this.wallNow();
    for (const stamp of seen) {
      const remote = stamp ? parseHlc(stamp) : undefined;
      if (remote && formatHlc({ ...remote, node: clock.node }) > formatHlc(clock))
        clock = receiveHlc(clock, remote, now);
    }
    return tickHlc(clock, now);
  }

  advance(stamp: string): void {
    this.settings.set({ hlc: stamp });
  }

  /**
   * Learns the cloud's time from a pull: the offset to this device's clock
   * (round-trip time ignored: it only has to be well inside the 5-minute
   * limit), and the clock moves past it, so a slow device clock catches up.
   */
  observeServerTime(serverTime: number): void {
    this.settings.set({ clockOffsetMs: serverTime - this.now() });
    this.advance(
      formatHlc(receiveHlc(this.current(), { wall: serverTime, counter: 0 }, this.wallNow())),
    );
  }
}
