// Runs in <head>, before first paint, so the page never flashes the wrong
// theme. A saved choice wins; otherwise the system preference, dark unless
// the system asks for light (a trading screen is dark by default).
(function () {
  'use strict';
  var theme = null;
  try {
    theme = JSON.parse(localStorage.getItem('publisher.theme'));
  } catch (e) { /* storage disabled: use the system preference */ }
  if (theme !== 'light' && theme !== 'dark')
    theme = window.matchMedia('(prefers-color-scheme: light)').matches ? 'light' : 'dark';
  document.documentElement.setAttribute('data-theme', theme);
})();
