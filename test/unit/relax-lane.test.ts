// The relax lane of a GPU worker (workers/relax-lane.ts): relax slots are handed out only while the worker holds no
// turbo or fast task and none ended within the grace, at most `relaxSlots` at a time, first come first served, and a
// reservation the SDK gives up is withdrawn. The device side (a relax pass pausing between steps for interactive work)
// is inference/gpu-gate.ts, tested below with the gate.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { defaultRelaxSlots, RelaxLane } from '../../workers/relax-lane';
import { BACKGROUND_PRIORITY, PriorityGate } from '../../inference/gpu-gate';

const reserveCtx = {
  slotType: 'activity' as const,
  taskQueue: 'us-west.gpu-a10g.relax',
  workerIdentity: 'test',
  workerBuildId: '',
  isSticky: false,
};

/** Whether `promise` settles within `ms`. */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  return Promise.race([promise.then(() => true), sleep(ms).then(() => false)]);
}

describe('relax lane', () => {
  test('95% of the slots, at least one', () => {
    assert.equal(defaultRelaxSlots(1), 1);
    assert.equal(defaultRelaxSlots(8), 7);
    assert.equal(defaultRelaxSlots(40), 38);
    assert.throws(() => new RelaxLane({ relaxSlots: 0 }), /relaxSlots must be a positive integer/);
  });

  test('an idle worker hands out relax slots up to its cap, then waits for one to come back', async () => {
    const lane = new RelaxLane({ relaxSlots: 2, resumeGraceMs: 20 });
    const supplier = lane.slotSupplier();
    const signal = new AbortController().signal;
    await supplier.reserveSlot(reserveCtx, signal);
    const second = await supplier.reserveSlot(reserveCtx, signal);
    const third = supplier.reserveSlot(reserveCtx, signal);
    assert.equal(await settlesWithin(third, 40), false, 'a third slot waits while two are out');
    supplier.releaseSlot({ permit: second });
    assert.equal(await settlesWithin(third, 40), true, 'and is handed out once one comes back');
    assert.deepEqual(
      { held: lane.stats().relaxHeld, granted: lane.stats().relaxGranted, open: lane.open },
      { held: 2, granted: 3, open: false },
    );
    lane.close();
  });

  test('interactive work closes the lane at once; it reopens only after the grace', async () => {
    let now = 1_000;
    const lane = new RelaxLane({ relaxSlots: 4, resumeGraceMs: 30, now: () => now });
    const supplier = lane.slotSupplier();
    lane.interactiveStarted();
    assert.equal(lane.open, false);
    assert.equal(supplier.tryReserveSlot(reserveCtx), null, 'no eager slot either');
    const waiting = supplier.reserveSlot(reserveCtx, new AbortController().signal);
    assert.equal(await settlesWithin(waiting, 40), false, 'no relax slot while a fast task is in hand');
    lane.interactiveEnded();
    now += 10;
    assert.equal(lane.open, false, 'within the grace the interactive Worker polls first');
    assert.equal(await settlesWithin(waiting, 10), false);
    now += 25;
    assert.equal(await settlesWithin(waiting, 100), true, 'handed out once the grace is over (its timer rechecks)');
    lane.close();
  });

  test("a reservation the SDK aborts is withdrawn with the signal's reason and takes no slot", async () => {
    const lane = new RelaxLane({ relaxSlots: 1, resumeGraceMs: 0 });
    lane.interactiveStarted();
    const abort = new AbortController();
    const waiting = lane.slotSupplier().reserveSlot(reserveCtx, abort.signal);
    const reason = new Error('no longer needed');
    abort.abort(reason);
    // The SDK logs any other rejection as a fault of the supplier.
    await assert.rejects(waiting, (err) => err === reason);
    const idle = lane.whenIdle(abort.signal);
    await assert.rejects(idle, { name: 'AbortError' }, 'the activity side gets an AbortError');
    lane.interactiveEnded();
    await sleep(5);
    assert.equal(lane.stats().relaxHeld, 0);
    lane.close();
  });

  test('a relax task in hand waits for the worker to be idle, not behind a reservation for a slot it holds', async () => {
    const lane = new RelaxLane({ relaxSlots: 1, resumeGraceMs: 0 });
    const supplier = lane.slotSupplier();
    const signal = new AbortController().signal;
    const permit = await supplier.reserveSlot(reserveCtx, signal); // the lane allowed a poll while idle...
    lane.interactiveStarted(); // ...and a fast task came before the relax one
    const nextPoll = supplier.reserveSlot(reserveCtx, signal);
    const idle = lane.whenIdle(signal);
    assert.equal(await settlesWithin(idle, 20), false, 'the relax task waits while fast work is in hand');
    lane.interactiveEnded();
    assert.equal(await settlesWithin(idle, 50), true, 'and runs once it is done, though the next poll still waits');
    assert.equal(await settlesWithin(nextPoll, 20), false, 'its slot is still out');
    supplier.releaseSlot({ permit });
    assert.equal(await settlesWithin(nextPoll, 50), true);
    lane.close();
  });

  test("the interactive Worker's interceptor counts its tasks in hand, failed ones too", async () => {
    const lane = new RelaxLane({ relaxSlots: 1, resumeGraceMs: 0 });
    const [factory] = lane.interactiveInterceptors();
    const execute = factory?.({} as never).inbound?.execute;
    assert.ok(execute);
    let seen = -1;
    await execute({ args: [], headers: {} }, async () => {
      seen = lane.stats().interactive;
      return Promise.resolve('done');
    });
    assert.equal(seen, 1);
    await assert.rejects(
      execute({ args: [], headers: {} }, () => Promise.reject(new Error('boom'))),
      /boom/,
    );
    assert.equal(lane.stats().interactive, 0);
    lane.close();
  });
});

describe('the device between steps (inference/gpu-gate.ts)', () => {
  const signal = new AbortController().signal;

  test('a relax job hands the device to waiting fast work and gets it back after', async () => {
    const gate = new PriorityGate();
    const relax = await gate.acquire(5, signal, 'relax');
    assert.equal(relax.mustYield(), false, 'nothing waits');
    assert.equal(await relax.yieldToHigher(signal), 0);
    const order: string[] = [];
    const fast = gate.acquire(3, signal, 'fast').then((hold) => {
      order.push('fast');
      return hold;
    });
    const laterRelax = gate.acquire(5, signal, 'relax 2').then((hold) => {
      order.push('relax 2');
      return hold;
    });
    await sleep(1);
    assert.equal(relax.mustYield(), true);
    const back = relax.yieldToHigher(signal).then(() => order.push('relax back'));
    (await fast).release();
    await back;
    assert.deepEqual(order, ['fast', 'relax back'], 'the paused job goes before a later one of its priority');
    relax.release();
    (await laterRelax).release();
    assert.deepEqual(order, ['fast', 'relax back', 'relax 2']);
  });

  test('a job does not yield to one of its own or lower priority', async () => {
    const gate = new PriorityGate();
    const fast = await gate.acquire(3, signal, 'fast');
    const relax = gate.acquire(5, signal, 'relax');
    const fast2 = gate.acquire(3, signal, 'fast 2');
    await sleep(1);
    assert.equal(fast.mustYield(), false);
    fast.release();
    (await fast2).release();
    (await relax).release();
  });

  test('background work waits out the grace after foreground work, and a foreground arrival in it goes first', async () => {
    const gate = new PriorityGate(40);
    const fast = await gate.acquire(3, signal, 'fast');
    const background = gate.acquire(BACKGROUND_PRIORITY + 5, signal, 'relax');
    fast.release();
    assert.equal(await settlesWithin(background, 15), false, 'the device stays free for the next fast task');
    const next = await gate.acquire(3, signal, 'next fast');
    assert.equal(await settlesWithin(background, 60), false, 'which takes it ahead of the background job');
    next.release();
    assert.equal(await settlesWithin(background, 15), false, 'a new grace after it');
    assert.equal(await settlesWithin(background, 80), true, 'then the background job runs');
    (await background).release();
    const idle = await gate.acquire(BACKGROUND_PRIORITY + 5, signal, 'relax on an idle device');
    idle.release();
  });

  test('a paused job cancelled while it waits holds nothing: its release does not free the device', async () => {
    const gate = new PriorityGate();
    const relax = await gate.acquire(5, signal, 'relax');
    const fast = gate.acquire(3, signal, 'fast');
    await sleep(1);
    const abort = new AbortController();
    const back = relax.yieldToHigher(abort.signal);
    const fastHold = await fast;
    abort.abort();
    await assert.rejects(back, /cancelled while queued/);
    relax.release();
    const other = gate.acquire(3, signal, 'other');
    assert.equal(await settlesWithin(other, 20), false, 'the device is still the fast job’s');
    fastHold.release();
    (await other).release();
  });
});
