// web/client/publisher.js, SseParser: the text/event-stream format as the
// library reads it from a fetch() body, in chunks cut anywhere.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SseParser } from '../../web/client/publisher.js';

function parse(chunks) {
	const events = [];
	const p = new SseParser((e) => events.push(e));
	for (const c of chunks) p.push(c);
	return events;
}

const STREAM = 'id: k:1\ndata: {"type":"stream"}\n\nid: k:2\ndata: {"type":"hello"}\n\n';

test('events with their id and data, the default type message', () => {
	assert.deepEqual(parse([STREAM]), [
		{ id: 'k:1', type: 'message', data: '{"type":"stream"}' },
		{ id: 'k:2', type: 'message', data: '{"type":"hello"}' },
	]);
});

test('the same events whatever the chunks: cut at every byte', () => {
	const whole = parse([STREAM]);
	const bytes = parse([...STREAM]);
	assert.deepEqual(bytes, whole);
	for (let i = 1; i < STREAM.length; i++) assert.deepEqual(parse([STREAM.slice(0, i), STREAM.slice(i)]), whole, 'cut at ' + i);
});

test('CRLF and CR line ends, a CRLF split across chunks', () => {
	const want = [{ id: 'a', type: 'message', data: 'x' }, { id: 'b', type: 'message', data: 'y' }];
	assert.deepEqual(parse(['id: a\r\ndata: x\r\n\r\nid: b\r\ndata: y\r\n\r\n']), want);
	assert.deepEqual(parse(['id: a\rdata: x\r\rid: b\rdata: y\r\r']), want);
	assert.deepEqual(parse(['id: a\r', '', '\ndata: x\r', '\n\r', '\nid: b\r\ndata: y\r\n\r', '\n']), want);
});

test('comments are skipped; an event without data is not one; data lines join with LF', () => {
	assert.deepEqual(parse([': keep-alive\n\nid: 1\n\ndata: a\ndata: b\n\n']), [{ id: '1', type: 'message', data: 'a\nb' }]);
});

test('the last id carries over; no space after the colon is fine; event names the type', () => {
	assert.deepEqual(parse(['id:7\ndata:x\n\nevent: ping\ndata: y\n\n']), [
		{ id: '7', type: 'message', data: 'x' },
		{ id: '7', type: 'ping', data: 'y' },
	]);
	assert.deepEqual(parse(['data: z\n\n']), [{ id: null, type: 'message', data: 'z' }]);
});

test('nothing is dispatched until the blank line that ends an event', () => {
	assert.deepEqual(parse(['id: 1\ndata: {"a":1}\n']), []);
});
