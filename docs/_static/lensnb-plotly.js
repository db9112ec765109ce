// Draw the plotly figures of a tutorial page: each one's figure is JSON in a script tag beside
// its div (docs/_ext/tutorial_pages.py); plotly.js comes from the installed plotly package.
document.querySelectorAll("script[data-lensnb-plotly]").forEach((spec) => {
  const figure = JSON.parse(spec.textContent);
  const div = document.getElementById(spec.dataset.lensnbPlotly);
  Plotly.newPlot(div, figure.data, figure.layout || {}, figure.config || {});
});
