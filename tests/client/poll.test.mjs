// The client library against the real server over long-poll (suite.mjs).
import { defineSuite } from './suite.mjs';

defineSuite('poll');
