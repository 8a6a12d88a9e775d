"""The five tradebus agents and the runtime they share. Agents never import each other."""
