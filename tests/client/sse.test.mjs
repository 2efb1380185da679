// The client library against the real server over Server-Sent Events (suite.mjs).
import { defineSuite } from './suite.mjs';

defineSuite('sse');
